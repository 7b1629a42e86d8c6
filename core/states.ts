/**
 * Pilot and unit state models as data, and the one function that decides a state change.
 *
 * The states and their wire values are RP 0.22's (plus UNSCHEDULED from v0.23). The transition rule is
 * RP 1.x's ordered model (`_state_progress`): every state has a rank, a change may only go to a higher
 * rank, and the states skipped on the way are reported so that callbacks fire once per state. An ordered
 * model is what makes a single conditional write (`#state = :current`) enough to keep out stale and
 * reordered updates.
 *
 * ```
 * pilot:  PendingLaunch(0) → Launching(1) → PendingActive(2) → Active(3) → Done | Failed | Canceled (4)
 * unit:   New(0) → Unscheduled(1) → PendingInputStaging(2) → StagingInput(3) → PendingExecution(4)
 *         → Scheduling(5) → Executing(6) → PendingOutputStaging(7) → StagingOutput(8)
 *         → Done | Failed | Canceled (9)
 * ```
 *
 * Deliberate difference from RP 1.x: RP fills in every skipped state for any target, so a unit canceled
 * while pending would be reported as having passed Executing. Here only DONE (the end of the happy path)
 * fills in skipped states; FAILED and CANCELED are exits reachable from any non-final state, entered
 * directly.
 *
 * The staging states belong to a unit's path only when it has staging directives (RP 0.22's UM controller
 * sends a unit without input directives NEW → PENDING_EXECUTION, and the agent goes to STAGING_OUTPUT only
 * when there are output directives): {@link unitSkips} names the states a unit never passes, and
 * `progress` neither fills them in nor enters them.
 */

/** Pilot states (RP 0.22 wire values). */
export const PilotState = {
  PENDING_LAUNCH: 'PendingLaunch',
  LAUNCHING: 'Launching',
  PENDING_ACTIVE: 'PendingActive',
  ACTIVE: 'Active',
  DONE: 'Done',
  FAILED: 'Failed',
  CANCELED: 'Canceled',
} as const;
/** A pilot state's wire value. */
export type PilotState = (typeof PilotState)[keyof typeof PilotState];

/** Unit states (RP 0.22 wire values, plus UNSCHEDULED from v0.23). */
export const UnitState = {
  NEW: 'New',
  UNSCHEDULED: 'Unscheduled',
  PENDING_INPUT_STAGING: 'PendingInputStaging',
  STAGING_INPUT: 'StagingInput',
  PENDING_EXECUTION: 'PendingExecution',
  SCHEDULING: 'Scheduling',
  EXECUTING: 'Executing',
  PENDING_OUTPUT_STAGING: 'PendingOutputStaging',
  STAGING_OUTPUT: 'StagingOutput',
  DONE: 'Done',
  FAILED: 'Failed',
  CANCELED: 'Canceled',
} as const;
/** A unit state's wire value. */
export type UnitState = (typeof UnitState)[keyof typeof UnitState];

/** An ordered state model: ranks, final states and the final→final corrections RP allows. */
export interface StateModel<S extends string> {
  readonly name: string;
  /** Rank of each state; a change must go to a higher rank. All finals share the top rank. */
  readonly order: Readonly<Record<S, number>>;
  readonly finals: readonly S[];
  /** final → finals it may still become (RP: from CANCELED any final; a pilot's FAILED may become DONE) */
  readonly finalOverrides: Readonly<Partial<Record<S, readonly S[]>>>;
  /** Finals entered directly, without filling in the skipped states (exits, not completions). */
  readonly exits?: readonly S[];
  /**
   * States entered only when targeted, never filled in on the way: a unit bound to a pilot at submit
   * never was UNSCHEDULED, so its history must not say it was.
   */
  readonly detours?: readonly S[];
}

/** The pilot model. */
export const pilotModel: StateModel<PilotState> = {
  name: 'pilot',
  order: {
    PendingLaunch: 0,
    Launching: 1,
    PendingActive: 2,
    Active: 3,
    Done: 4,
    Failed: 4,
    Canceled: 4,
  },
  finals: [PilotState.DONE, PilotState.FAILED, PilotState.CANCELED],
  finalOverrides: {
    // RP: a pilot that failed (e.g. lost heartbeat) may still report a clean DONE later.
    Failed: [PilotState.DONE],
    Canceled: [PilotState.DONE, PilotState.FAILED],
  },
  exits: [PilotState.FAILED, PilotState.CANCELED],
};

/** The unit model. */
export const unitModel: StateModel<UnitState> = {
  name: 'unit',
  order: {
    New: 0,
    Unscheduled: 1,
    PendingInputStaging: 2,
    StagingInput: 3,
    PendingExecution: 4,
    Scheduling: 5,
    Executing: 6,
    PendingOutputStaging: 7,
    StagingOutput: 8,
    Done: 9,
    Failed: 9,
    Canceled: 9,
  },
  finals: [UnitState.DONE, UnitState.FAILED, UnitState.CANCELED],
  // RP: a cancel request may race with the unit's real outcome; the real outcome wins.
  finalOverrides: { Canceled: [UnitState.DONE, UnitState.FAILED] },
  exits: [UnitState.FAILED, UnitState.CANCELED],
  detours: [UnitState.UNSCHEDULED],
};

/** Outcome of {@link progress}: the new state and every state entered on the way, or why not. */
export type Progress<S> =
  | { ok: true; state: S; passed: S[] /* every state entered on the way, in order, ending with target */ }
  | { ok: false; reason: string /* says why, naming both states */ };

/** True when `s` is one of the model's final states. */
export function isFinal<S extends string>(model: StateModel<S>, s: S): boolean {
  return model.finals.includes(s);
}

/**
 * Decide whether `current → target` is a progress (RP's `_state_progress`).
 *
 * Refuses equal and backward moves and final→final moves other than `finalOverrides`. On success,
 * `passed` lists every state entered, in rank order, ending with `target`: the skipped non-final states
 * are included (so callbacks fire once per state), except for exits (FAILED, CANCELED) which are entered
 * directly, and except for `skip`: states not on this object's path (a unit's staging states when it has
 * no directives, see {@link unitSkips}), which are neither filled in nor a valid target.
 */
export function progress<S extends string>(
  model: StateModel<S>,
  current: S,
  target: S,
  skip: readonly S[] = [],
): Progress<S> {
  if (skip.includes(target))
    return refuse(model, current, target, `${target} is not on this ${model.name}'s path`);
  if (isFinal(model, current)) {
    if (model.finalOverrides[current]?.includes(target)) return { ok: true, state: target, passed: [target] };
    return refuse(model, current, target, `${current} is final`);
  }
  const from = model.order[current];
  const to = model.order[target];
  if (to === from) return refuse(model, current, target, 'no progress (same rank)');
  if (to < from) return refuse(model, current, target, 'would go backward');
  if (model.exits?.includes(target)) return { ok: true, state: target, passed: [target] };
  return {
    ok: true,
    state: target,
    passed: [...between(model, from, to).filter((s) => !skip.includes(s)), target],
  };
}

/**
 * {@link progress} for a step that may be retried: staying in the same non-final state is a no-op
 * success (`passed` empty, nothing entered), not an error. A Launch retried after a transient error
 * finds the pilot already LAUNCHING, from its own first attempt; that must not fail the pilot.
 * Everything else is decided by `progress` (finals stay final, backward stays refused).
 */
export function progressOrStay<S extends string>(model: StateModel<S>, current: S, target: S): Progress<S> {
  if (current === target && !isFinal(model, current)) return { ok: true, state: current, passed: [] };
  return progress(model, current, target);
}

/** What {@link unitSkips} and friends read from a unit description: whether it has directives. */
export interface StagingShape {
  inputStaging?: readonly unknown[] | undefined;
  outputStaging?: readonly unknown[] | undefined;
}

const has = (xs: readonly unknown[] | undefined) => (xs?.length ?? 0) > 0;

/**
 * The unit states a unit never passes (RP 0.22): the input staging states without input directives,
 * the output staging states without output directives. Pass to {@link progress}.
 */
export function unitSkips(d: StagingShape | undefined): UnitState[] {
  const skip: UnitState[] = [];
  if (!has(d?.inputStaging)) skip.push(UnitState.PENDING_INPUT_STAGING, UnitState.STAGING_INPUT);
  if (!has(d?.outputStaging)) skip.push(UnitState.PENDING_OUTPUT_STAGING, UnitState.STAGING_OUTPUT);
  return skip;
}

/** Where a unit waits for its pilot's agent (at submit, and when rescheduled): before its input staging if any. */
export function pendingState(d: StagingShape | undefined): UnitState {
  return has(d?.inputStaging) ? UnitState.PENDING_INPUT_STAGING : UnitState.PENDING_EXECUTION;
}

/**
 * What the agent's claim moves a pending unit to: STAGING_INPUT when it has input directives (the agent
 * stages them before the launch script, RP's agent input stager), else SCHEDULING.
 */
export function claimState(d: StagingShape | undefined): UnitState {
  return has(d?.inputStaging) ? UnitState.STAGING_INPUT : UnitState.SCHEDULING;
}

/**
 * Whether a unit may be armed (agent/arm-ahead.ts), by its claim or after it: only one that needs a
 * write-ahead (not restartable: a restartable unit may rerun, and an armed one would fail instead of
 * being rescheduled) and that its claim moves to SCHEDULING (one with input directives is staged first,
 * then started with a write-ahead).
 */
export function armable(d: (StagingShape & { restartable?: boolean | undefined }) | undefined): boolean {
  return d?.restartable !== true && claimState(d) === UnitState.SCHEDULING;
}

/** Non-final states ranked strictly between `from` and `to`, in rank order. */
function between<S extends string>(model: StateModel<S>, from: number, to: number): S[] {
  const states = Object.keys(model.order) as S[];
  return states
    .filter(
      (s) =>
        !isFinal(model, s) && !model.detours?.includes(s) && model.order[s] > from && model.order[s] < to,
    )
    .sort((a, b) => model.order[a] - model.order[b]);
}

function refuse<S extends string>(model: StateModel<S>, current: S, target: S, why: string): Progress<S> {
  return { ok: false, reason: `${model.name} cannot go from ${current} to ${target}: ${why}` };
}

/**
 * Where a pilot's end sends one of its units (RP backfilling rule): null = leave it (final).
 * Not yet executing → UNSCHEDULED (it never ran); executing or staging out → UNSCHEDULED when the
 * description says `restartable`, else FAILED (its work is lost). An `armed` unit (claimed and armed to
 * start, agent/arm-ahead.ts) counts as executing: its agent may have spawned it before it could say so.
 */
export function sweepTarget(state: UnitState, restartable: boolean, armed = false): UnitState | null {
  if (isFinal(unitModel, state)) return null;
  if (unitModel.order[state] < unitModel.order.Executing && !armed) return UnitState.UNSCHEDULED;
  return restartable ? UnitState.UNSCHEDULED : UnitState.FAILED;
}

/**
 * The sweep's backward move to UNSCHEDULED after the unit's pilot ended. It is not a progress (it goes
 * backward), so it has its own rule: allowed from any non-final state other than UNSCHEDULED itself.
 */
export function reschedule(current: UnitState): Progress<UnitState> {
  const target = UnitState.UNSCHEDULED;
  if (isFinal(unitModel, current)) return refuse(unitModel, current, target, `${current} is final`);
  if (current === target) return refuse(unitModel, current, target, 'already unscheduled');
  return { ok: true, state: target, passed: [target] };
}
