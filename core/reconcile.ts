/**
 * The reconciler's rule: what to do with a pilot whose end has not been fully processed.
 *
 * Every pilot is "live" from its creation until Finalize has recorded its final state, swept its units
 * and retired it. Normally the pilot's state machine execution does all of that. The reconciler looks at
 * the live pilots from outside the machine and finishes the job when the machine cannot: its execution
 * ended without finalizing (Finalize failed past its retries, a Lambda step kept failing, someone stopped
 * the execution), or it never started. It also returns the units whose lease ran out before they were
 * started (see {@link leaseAction}). Pure: the caller reads the pilot, its execution and units, and acts.
 */
import { type Progress, UnitState } from './states.ts';

/** Status of a pilot's state machine execution, as DescribeExecution reports it; `MISSING` when there is none. */
export type ExecutionStatus =
  | 'RUNNING'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'TIMED_OUT'
  | 'ABORTED'
  | 'PENDING_REDRIVE'
  | 'MISSING';

/** What the reconciler sees of one live pilot. */
export interface LivePilotView {
  /** True when the pilot's state is final (DONE, FAILED, CANCELED). */
  final: boolean;
  /** When the pilot was submitted (ms since the epoch). */
  submittedMs: number;
  execution: ExecutionStatus;
}

/**
 * - `none`: the execution is running and will finalize the pilot itself (a RUNNING execution of a final
 *   pilot is in its Finalize step).
 * - `finalize`: end the pilot (FAILED with `reason` unless it is final already), sweep its units, retire it —
 *   exactly what the Finalize step does.
 */
export type ReconcileAction = { kind: 'none' } | { kind: 'finalize'; reason: string };

/**
 * Seconds a pilot may exist without an execution: the API creates the pilot first and starts its
 * execution right after, so a young pilot without one is normal.
 */
export const START_GRACE_SECONDS = 120;

/** The reconciler's decision for one live pilot at `nowMs`. */
export function reconcileAction(view: LivePilotView, nowMs: number): ReconcileAction {
  if (view.execution === 'RUNNING') return { kind: 'none' };
  if (view.execution === 'MISSING') {
    if (!view.final && nowMs - view.submittedMs < START_GRACE_SECONDS * 1000) return { kind: 'none' };
    return {
      kind: 'finalize',
      reason: view.final
        ? 'pilot ended but its units were not swept (no execution found)'
        : 'pilot execution never started',
    };
  }
  return {
    kind: 'finalize',
    reason: view.final
      ? `pilot execution ended ${view.execution} before its units were swept`
      : `pilot execution ended ${view.execution} without finalizing the pilot`,
  };
}

/**
 * Default seconds a pull's units stay leased to the agent that pulled them: the agent starts (writes
 * ahead, `POST /agent/started`) what it pulled within this time, or the reconciler returns it to the queue.
 * A few minutes: an agent buffers a few hundred units beyond its cores, and a unit returned from a live
 * agent's buffer is only pulled again (its stale start is refused), never lost or run twice.
 */
export const DEFAULT_LEASE_SECONDS = 300;

/** What the reconciler sees of one unit bound to a live, not yet final pilot. */
export interface LeasedUnitView {
  state: UnitState;
  /** The lease holder's id (set by the claim, removed when the lease is returned). */
  lease?: string;
  /** The lease deadline (ms since the epoch); kept after a return until the unit is back in its queue. */
  leaseUntilMs?: number;
  /** Armed to start by its agent (agent/arm-ahead.ts): it may be running, so it is the agent's to start. */
  armed?: boolean;
}

/**
 * - `none`: nothing to do (no lease, or a lease still running, or the unit started).
 * - `return`: the lease expired before the unit was started: move it SCHEDULING → PENDING_EXECUTION (guarded
 *   by the lease holder, so a start racing with the return is either the winner or refused) and send it to
 *   its pilot's queue.
 * - `requeue`: a return was recorded but the unit may not have reached its queue (the reconciler died in
 *   between): send it again (a duplicate message is harmless: the claim is authoritative) and clear the
 *   deadline.
 */
export type LeaseAction = { kind: 'none' } | { kind: 'return' } | { kind: 'requeue' };

/** The reconciler's lease rule for one unit at `nowMs`. */
export function leaseAction(view: LeasedUnitView, nowMs: number): LeaseAction {
  if (view.leaseUntilMs === undefined || view.leaseUntilMs > nowMs) return { kind: 'none' };
  if (view.state === UnitState.SCHEDULING && view.lease !== undefined)
    return view.armed ? { kind: 'none' } : { kind: 'return' };
  if (view.state === UnitState.PENDING_EXECUTION && view.lease === undefined) return { kind: 'requeue' };
  return { kind: 'none' };
}

/**
 * The lease return's state move: SCHEDULING → PENDING_EXECUTION, backward, so not a progress. Allowed only
 * from SCHEDULING: a unit that started (EXECUTING or later) is never returned, and its history never claims
 * it executed before it is claimed again.
 */
export function returnLease(current: UnitState): Progress<UnitState> {
  const target = UnitState.PENDING_EXECUTION;
  if (current !== UnitState.SCHEDULING)
    return {
      ok: false,
      reason: `unit cannot go from ${current} to ${target}: only an unstarted claim (Scheduling) is returned`,
    };
  return { ok: true, state: target, passed: [target] };
}
