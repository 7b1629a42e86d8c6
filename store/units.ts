/**
 * Units: created in bulk (BatchWriteItem), read in bulk (BatchGetItem), and moved in bulk: one
 * BatchGetItem for the current states, then one guarded UpdateItem per change, in parallel.
 */

import type { ComputeUnitDescription } from '../core/descriptions.ts';
import { BadParameter, DoesNotExist } from '../core/errors.ts';
import { groupBy } from '../core/group.ts';
import { returnLease } from '../core/reconcile.ts';
import {
  isFinal,
  type Progress,
  progress,
  reschedule,
  type StagingShape,
  type UnitState,
  unitModel,
  unitSkips,
} from '../core/states.ts';
import { batchGet, batchPut, mapLimit } from './batch.ts';
import type { StoreContext } from './context.ts';
import type { Update } from './expr.ts';
import {
  applyPatch,
  applyTransitionFrom,
  type Expect,
  type PatchOutcome,
  type Presumption,
  type TransitionOutcome,
} from './guarded.ts';
import { changedKey, entityPk, feedOf, PK, queueKey } from './keys.ts';
import { getUnitManager } from './managers.ts';
import { notify } from './observer.ts';
import { type Page, type PageOptions, queryByParent, queryByPilot } from './query.ts';
import {
  appendLog,
  decodeHistory,
  HISTORY,
  historyStep,
  type Item,
  stripKeys,
  type UnitRecord,
} from './records.ts';
import { reserveIds } from './sessions.ts';

/** What a new unit starts with besides its description. */
export interface NewUnit {
  description: ComputeUnitDescription;
  /** Initial state (default NEW); the states before it are recorded as passed, as a transition would. */
  state?: UnitState;
  /** Pilot the unit is bound to at creation (early-binding schedulers). */
  pilot?: string;
  /** Waits in its manager's queue (late binding, backfilling): no pilot, state UNSCHEDULED. */
  queued?: true;
  sandbox?: string;
}

/** Fields a unit write may set besides the state. Timestamps `started`/`finished` default to the write time. */
export interface UnitPatch {
  /** Bind to a pilot (also sets the byPilot key) or unbind (null). */
  pilot?: string | null;
  /** Put in this unit manager's wait queue (byPilot key {@link queueKey}); with `pilot: null`. */
  queue?: string;
  sandbox?: string;
  exitCode?: number;
  stdout?: string;
  stderr?: string;
  execLocations?: readonly string[];
  started?: string;
  finished?: string;
  /** Lines appended to the unit's log. */
  appendLog?: readonly string[];
  /** Lease the claim to this holder (string) or drop the holder (null: the lease was returned). */
  lease?: string | null;
  /** The lease's deadline in ms since the epoch (number), or clear it (null). */
  leaseUntil?: number | null;
  /**
   * Arm the unit in the same write (a claim that arms, agent/arm-ahead.ts): from then on it is treated as
   * possibly started, as after {@link armUnits}. Only on a claim into SCHEDULING, never taken off here.
   */
  armed?: true;
}

/** Guards a unit write may carry besides the state. */
export interface UnitExpect {
  /** The unit must be bound to this pilot (an agent may only move its own units). */
  pilot?: string;
  /** The unit's claim must be leased to this holder (a start by the pull that claimed it). */
  lease?: string;
  /** The unit must wait in this unit manager's queue (a backfilling claim). */
  queue?: string;
  /**
   * The unit must not be armed ({@link armUnits}): its agent may have spawned it without a write-ahead,
   * so only that agent may say it did not start. Set by the store itself on every write that takes a
   * unit back or ends it as unstarted (a cancel `before` EXECUTING, a reschedule, a lease return).
   */
  unarmed?: true;
}

/** One change of {@link transitionUnits}. */
export interface UnitTransition {
  uid: string;
  target: UnitState;
  patch?: UnitPatch;
  expect?: UnitExpect;
  /** Move only from exactly this state (a backfilling claim takes only an UNSCHEDULED unit). */
  from?: UnitState;
  /**
   * Move only while the unit is ranked below this state (a cancel in the table may take a unit that is not
   * running yet, never one an agent has started: that one its agent must kill).
   */
  before?: UnitState;
  /**
   * An agent's report: when its state is refused because the unit already passed it (reports arrive
   * late, reordered or twice), its facts are still kept (see {@link keepReportFacts}).
   */
  report?: boolean;
  /**
   * The state the unit is presumed to be in (the common path: an agent's start presumes its unit
   * claimed, its end executing): the guarded write goes out without a read before it, decided as for a
   * unit without staging directives and conditioned on that state and on the absence of any directive
   * that would change the decision. A unit found otherwise is read and decided as usual (one failed
   * conditional write more, which DynamoDB bills as a write).
   */
  presume?: UnitState;
}

/** One unit of {@link rescheduleUnits}. */
export interface UnitReschedule {
  uid: string;
  expect?: UnitExpect;
  /** Back into this (backfilling) unit manager's wait queue rather than just unbound. */
  queue?: string;
  /** Lines appended to the unit's log in the same write. */
  appendLog?: readonly string[];
}

const toRecord = (item: Item): UnitRecord => stripKeys<UnitRecord>(item);

/**
 * Create units under `umgrId`: uids reserved with one UpdateItem, items written 25 per BatchWriteItem.
 * @throws DoesNotExist (no such manager), IncorrectState (session closed), BadParameter, DatabaseError
 */
export async function createUnits(
  ctx: StoreContext,
  sessionId: string,
  umgrId: string,
  units: readonly NewUnit[],
  /** The caller has just read the manager (submit does): not read again. */
  managerRead = false,
  /**
   * The units' uids, reserved by the caller ({@link reserveIds}, one per unit, in order) while it did
   * something else (submit reserves them beside its request's claim); reserved here when absent.
   */
  reserved?: Promise<readonly string[]>,
): Promise<UnitRecord[]> {
  if (!managerRead) await getUnitManager(ctx, sessionId, umgrId);
  const uids = await (reserved ?? reserveIds(ctx, sessionId, 'unit', units.length));
  const now = ctx.now();
  const created = units.map((u, i) => {
    const uid = uids[i] as string;
    const passed =
      u.state && u.state !== 'New'
        ? mustProgress(progress(unitModel, 'New', u.state, unitSkips(u.description))).passed
        : [];
    const entered = ['New' as UnitState, ...passed];
    const record: UnitRecord = {
      sessionId,
      uid,
      umgr: umgrId,
      ...(u.description.name === undefined ? {} : { name: u.description.name }),
      state: u.state ?? 'New',
      stateHistory: entered.map((state) => ({ state, time: now })),
      description: u.description,
      ...(u.pilot === undefined ? {} : { pilot: u.pilot }),
      ...(u.sandbox === undefined ? {} : { sandbox: u.sandbox }),
      submitted: now,
      log: [],
      changed: changedKey(now, uid),
    };
    const keys = { [PK]: entityPk(sessionId, uid), kind: 'unit', parent: feedOf(sessionId, umgrId) };
    const pilotKey =
      u.pilot !== undefined
        ? { pilotKey: entityPk(sessionId, u.pilot) }
        : u.queued
          ? { pilotKey: queueKey(sessionId, umgrId) }
          : {};
    const { stateHistory: _, ...rest } = record;
    return { record, item: { ...rest, [HISTORY]: [historyStep(entered, now)], ...keys, ...pilotKey } };
  });
  await batchPut(
    ctx.db,
    created.map((c) => c.item),
  );
  const o = ctx.observer;
  if (o)
    notify(() =>
      o.created?.(
        'unit',
        created.map((c) => c.record.state),
      ),
    );
  if (o && created.length)
    notify(() =>
      o.wrote?.(
        feedOf(sessionId, umgrId),
        created.some((c) => isFinal(unitModel, c.record.state)),
      ),
    );
  return created.map((c) => c.record);
}

/** Units by uid (100 per BatchGetItem); absent uids are absent from the map. */
export async function findUnits(
  ctx: StoreContext,
  sessionId: string,
  uids: readonly string[],
): Promise<Map<string, UnitRecord>> {
  const found = await batchGet(
    ctx.db,
    uids.map((u) => entityPk(sessionId, u)),
  );
  const out = new Map<string, UnitRecord>();
  for (const item of found.values()) if (item.kind === 'unit') out.set(String(item.uid), toRecord(item));
  return out;
}

/**
 * Units by uid, in the order asked.
 * @throws DoesNotExist naming the first missing uid, DatabaseError
 */
export async function getUnits(
  ctx: StoreContext,
  sessionId: string,
  uids: readonly string[],
): Promise<UnitRecord[]> {
  const found = await findUnits(ctx, sessionId, uids);
  return uids.map((uid) => {
    const unit = found.get(uid);
    if (!unit) throw new DoesNotExist(`unit ${uid} does not exist`, { obj: uid });
    return unit;
  });
}

/** Units of a manager, oldest change first; with `since`, only those changed after that cursor. */
export function listUnits(
  ctx: StoreContext,
  sessionId: string,
  umgrId: string,
  options: PageOptions = {},
): Promise<Page<UnitRecord>> {
  return queryByParent(ctx, feedOf(sessionId, umgrId), options, toRecord);
}

/**
 * The units waiting in a backfilling manager's queue, oldest first (byPilot index, partition
 * {@link queueKey}). A page may hold units that left the queue since the index was read: callers check
 * the state, and a claim is guarded by the queue anyway.
 */
export function listQueuedUnits(
  ctx: StoreContext,
  sessionId: string,
  umgrId: string,
  options: Omit<PageOptions, 'since'> = {},
): Promise<Page<UnitRecord>> {
  return queryByPilot(ctx, queueKey(sessionId, umgrId), options, toRecord);
}

/** Units bound to a pilot (byPilot index), by uid. */
export function listPilotUnits(
  ctx: StoreContext,
  sessionId: string,
  pilotId: string,
  options: Omit<PageOptions, 'since'> = {},
): Promise<Page<UnitRecord>> {
  return queryByPilot(ctx, entityPk(sessionId, pilotId), options, toRecord);
}

/**
 * Apply many state changes: one BatchGetItem for the current states, then one guarded UpdateItem per
 * change (see store/guarded.ts), `ctx.concurrency` in parallel. Changes to the same unit are applied
 * one after another in the order given. Results are in input order; refusals carry the current record.
 * @throws DatabaseError only
 */
export function transitionUnits(
  ctx: StoreContext,
  sessionId: string,
  updates: readonly UnitTransition[],
): Promise<TransitionOutcome<UnitRecord, UnitState>[]> {
  return applyAll(ctx, sessionId, updates, (u) => ({
    target: u.target,
    // The fill-in rule: staging states are on a unit's path only when it has directives (core/states.ts).
    decide: (s, item) =>
      u.before !== undefined && unitModel.order[s] >= unitModel.order[u.before]
        ? { ok: false as const, reason: `unit is ${s}, not before ${u.before}` }
        : u.from !== undefined && s !== u.from
          ? { ok: false as const, reason: `unit is ${s}, not ${u.from}` }
          : progress(unitModel, s, u.target, unitSkips(item.description as StagingShape)),
    patch: u.patch ?? {},
    // "Not running yet" must also mean "not armed": an armed unit may be running already.
    expect: u.before === undefined ? u.expect : { ...u.expect, unarmed: true },
    ...(u.report ? { late: (w: Update, item: Item) => keepReportFacts(w, item, u.patch ?? {}) } : {}),
    ...(u.presume ? { presume: u.presume } : {}),
  }));
}

const STAGING_KEYS = ['inputStaging', 'outputStaging'] as const;

/**
 * A unit presumed in `state`, decided as one without staging directives. The write's condition pins
 * absent those directives whose presence would change `decide`'s answer from this state (found by asking
 * it with each present and absent), so no real item the write can land on is decided differently: a
 * claim or a start does not depend on them, an end depends on output staging.
 */
function presumeUnit(state: UnitState, decide: Change['decide']): Presumption {
  const answer = (has: Record<string, boolean>) => {
    const description = Object.fromEntries(STAGING_KEYS.filter((k) => has[k]).map((k) => [k, [{}]]));
    return JSON.stringify(decide(state, { kind: 'unit', state, description }));
  };
  const pinned = STAGING_KEYS.filter((k) =>
    [false, true].some((other) => {
      const rest = Object.fromEntries(STAGING_KEYS.filter((o) => o !== k).map((o) => [o, other]));
      return answer({ ...rest, [k]: false }) !== answer({ ...rest, [k]: true });
    }),
  );
  return {
    item: { kind: 'unit', state, description: {} },
    pin: (u) => {
      for (const k of pinned) {
        const p = u.path(`description.${k}`);
        u.when((c) => `attribute_not_exists(${p}) OR size(${p}) = ${c.value(0)}`);
      }
    },
  };
}

/**
 * The sweep after a pilot ended: move units back to UNSCHEDULED (core/states.ts `reschedule`) and unbind
 * them from their pilot, in the same guarded write. Pass `expect.pilot` so that only units still bound
 * to the ended pilot move.
 * @throws DatabaseError only
 */
export function rescheduleUnits(
  ctx: StoreContext,
  sessionId: string,
  units: readonly UnitReschedule[],
): Promise<TransitionOutcome<UnitRecord, UnitState>[]> {
  return applyAll(ctx, sessionId, units, (u) => ({
    decide: reschedule,
    // A lease belongs to the claim on the ended pilot: the unit is claimed afresh wherever it goes.
    patch: {
      pilot: null,
      lease: null,
      leaseUntil: null,
      ...(u.queue ? { queue: u.queue } : {}),
      ...(u.appendLog ? { appendLog: u.appendLog } : {}),
    },
    // An armed unit may have started on the ended pilot's agent: never rescheduled (the sweep fails it).
    expect: { ...u.expect, unarmed: true },
  }));
}

/**
 * Expired leases: move unstarted claims SCHEDULING → PENDING_EXECUTION (core/reconcile.ts `returnLease`)
 * and drop their holder, in one write guarded by that holder (`expect.lease`), so that a start racing
 * with the return either wins (the unit stays started) or is refused. The deadline stays until the unit
 * is back in its queue ({@link clearLeaseDeadline}).
 * @throws DatabaseError only
 */
export function returnLeases(
  ctx: StoreContext,
  sessionId: string,
  units: readonly UnitReschedule[],
): Promise<TransitionOutcome<UnitRecord, UnitState>[]> {
  return applyAll(ctx, sessionId, units, (u) => ({
    decide: returnLease,
    patch: { lease: null },
    // An armed unit is its live agent's to start whenever a core frees: its lease is not returned.
    expect: { ...u.expect, unarmed: true },
  }));
}

/** One unit of {@link armUnits}. */
export interface UnitArm {
  uid: string;
  /** The agent's pilot and the lease its pull holds: only the holder of an unstarted claim arms it. */
  pilot: string;
  lease: string;
  /** Arm (true) or disarm (false: the agent stops and says it never spawned the unit). */
  armed: boolean;
}

/**
 * Arms units to start (or disarms them): one conditional write per unit, only while the unit is
 * SCHEDULING, bound to `pilot` and leased to `lease`. A quiet write: the state does not change, so the
 * unit's change-feed entry is not moved and no watcher wakes. Refused for a unit cancelled, returned or rescheduled
 * meanwhile: its agent must not start it. Arming an armed unit again succeeds (a retried request).
 * @throws DatabaseError only
 */
export async function armUnits(
  ctx: StoreContext,
  sessionId: string,
  arms: readonly UnitArm[],
): Promise<PatchOutcome<UnitRecord>[]> {
  return mapLimit([...arms], ctx.concurrency, (a) =>
    applyPatch(ctx, {
      what: 'unit',
      pk: entityPk(sessionId, a.uid),
      uid: a.uid,
      states: ['Scheduling'],
      expect: toExpect(sessionId, { pilot: a.pilot, lease: a.lease }),
      patch: (u) => {
        if (a.armed) u.set('armed', true);
        else u.remove('armed');
      },
      toRecord,
      quiet: true,
    }),
  );
}

/** A returned unit reached its queue: clear its deadline (only while it is still PENDING_EXECUTION, unleased). */
export function clearLeaseDeadline(
  ctx: StoreContext,
  sessionId: string,
  uid: string,
  pilotId: string,
): Promise<PatchOutcome<UnitRecord>> {
  return patchUnit(
    ctx,
    sessionId,
    uid,
    { leaseUntil: null },
    { pilot: pilotId, states: ['PendingExecution'] },
  );
}

/** Update a unit's fields without a state change, guarded by its state and pilot binding. */
export function patchUnit(
  ctx: StoreContext,
  sessionId: string,
  uid: string,
  patch: UnitPatch,
  guard: UnitExpect & { states?: readonly UnitState[] } = {},
): Promise<PatchOutcome<UnitRecord>> {
  return applyPatch(ctx, {
    what: 'unit',
    pk: entityPk(sessionId, uid),
    uid,
    ...(guard.states ? { states: guard.states } : {}),
    expect: toExpect(sessionId, guard),
    patch: (u, now) => applyUnitPatch(u, sessionId, patch, now),
    toRecord,
  });
}

interface Change {
  target?: UnitState;
  decide(current: UnitState, item: Item): Progress<UnitState>;
  patch: UnitPatch;
  expect: UnitExpect | undefined;
  late?(u: Update, item: Item): boolean;
  presume?: UnitState;
}

async function applyAll<T extends { uid: string; expect?: UnitExpect }>(
  ctx: StoreContext,
  sessionId: string,
  updates: readonly T[],
  change: (u: T) => Change,
): Promise<TransitionOutcome<UnitRecord, UnitState>[]> {
  const byUnit = groupBy(updates.keys(), (i) => (updates[i] as T).uid);
  // Read first only the units whose first change presumes nothing.
  const first = (indexes: number[]) => change(updates[indexes[0] as number] as T);
  const unread = new Set(
    [...byUnit.entries()].filter(([, indexes]) => first(indexes).presume !== undefined).map(([uid]) => uid),
  );
  const items = await batchGet(
    ctx.db,
    [...byUnit.keys()].filter((uid) => !unread.has(uid)).map((uid) => entityPk(sessionId, uid)),
  );
  const results = new Array<TransitionOutcome<UnitRecord, UnitState>>(updates.length);
  await mapLimit([...byUnit.values()], ctx.concurrency, async (indexes) => {
    for (const i of indexes) {
      const u = updates[i] as T;
      const pk = entityPk(sessionId, u.uid);
      const item = items.get(pk);
      const c = change(u);
      const presumed = unread.delete(u.uid) && c.presume ? presumeUnit(c.presume, c.decide) : undefined;
      const { outcome, item: seen } = await applyTransitionFrom(
        ctx,
        {
          what: 'unit',
          pk,
          uid: u.uid,
          ...(c.target ? { target: c.target } : {}),
          decide: c.decide,
          expect: toExpect(sessionId, c.expect ?? {}),
          patch: (w, entered, now) => {
            applyUnitPatch(w, sessionId, c.patch, now);
            if (entered.includes('Executing') && c.patch.started === undefined) w.setIfAbsent('started', now);
            if (entered.some((s) => isFinal(unitModel, s)) && c.patch.finished === undefined)
              w.setIfAbsent('finished', now);
          },
          ...(c.late ? { late: c.late } : {}),
          toRecord,
        },
        presumed ?? (item?.kind === 'unit' ? item : undefined),
      );
      // Later changes of the same unit start from what this one wrote (or found).
      if (seen) items.set(pk, seen);
      results[i] = outcome;
    }
  });
  return results;
}

function applyUnitPatch(u: Update, sessionId: string, patch: UnitPatch, now: string): void {
  if (patch.pilot === null && patch.queue !== undefined)
    u.remove('pilot').set('pilotKey', queueKey(sessionId, patch.queue));
  else if (patch.pilot === null) u.remove('pilot').remove('pilotKey');
  else if (patch.pilot !== undefined)
    u.set('pilot', patch.pilot).set('pilotKey', entityPk(sessionId, patch.pilot));
  for (const key of [
    'sandbox',
    'exitCode',
    'stdout',
    'stderr',
    'execLocations',
    'started',
    'finished',
  ] as const) {
    if (patch[key] !== undefined) u.set(key, patch[key]);
  }
  if (patch.appendLog?.length) appendLog(u, patch.appendLog, now);
  if (patch.lease === null) u.remove('lease');
  else if (patch.lease !== undefined) u.set('lease', patch.lease);
  if (patch.leaseUntil === null) u.remove('leaseUntil');
  else if (patch.leaseUntil !== undefined) u.set('leaseUntil', patch.leaseUntil);
  if (patch.armed) u.set('armed', true);
}

/**
 * A late report's facts, for a unit that already passed the report's state: the result fields
 * (exit code, stdout, stderr, finish time) where absent; the start facts (sandbox, execLocations)
 * where absent and the start time when earlier than the one recorded (a write that skipped EXECUTING
 * stamped its own, later, time); and an EXECUTING step in the history of a unit that ended FAILED or
 * CANCELED without one, so a unit that ran always shows it ran. Adds nothing (returns false) when
 * the record already holds all of it, so duplicates cost one read and no write.
 */
function keepReportFacts(u: Update, item: Item, patch: UnitPatch): boolean {
  let kept = false;
  for (const key of ['sandbox', 'execLocations', 'exitCode', 'stdout', 'stderr', 'finished'] as const) {
    if (patch[key] !== undefined && item[key] === undefined) {
      u.set(key, patch[key]);
      kept = true;
    }
  }
  const started = patch.started;
  if (started !== undefined && (typeof item.started !== 'string' || started < item.started)) {
    u.set('started', started);
    kept = true;
  }
  const ran = started !== undefined || patch.sandbox !== undefined || patch.execLocations !== undefined;
  const steps = Array.isArray(item[HISTORY]) ? (item[HISTORY] as string[]) : [];
  if (ran && (item.state === 'Failed' || item.state === 'Canceled') && !executedSinceClaim(steps)) {
    // Before the step that ended it; at the start time if known, never after the end.
    const endStep = steps.at(-1) ?? '';
    const endMs = Number(endStep.slice(endStep.lastIndexOf('@') + 1));
    const startMs = started === undefined ? Number.NaN : Date.parse(started);
    const atMs = Number.isFinite(startMs) ? Math.min(startMs, endMs) : endMs;
    if (Number.isFinite(atMs)) {
      const step = historyStep(['Executing'], new Date(atMs).toISOString());
      u.set(HISTORY, [...steps.slice(0, -1), step, endStep]);
      kept = true;
    }
  }
  return kept;
}

/** True when the history shows EXECUTING after the unit's last claim (SCHEDULING). */
function executedSinceClaim(steps: readonly string[]): boolean {
  const states = decodeHistory(steps).map((h) => h.state);
  return states.lastIndexOf('Executing') > states.lastIndexOf('Scheduling');
}

function toExpect(sessionId: string, e: UnitExpect): Expect {
  return {
    kind: 'unit',
    ...(e.pilot === undefined ? {} : { pilot: e.pilot }),
    ...(e.lease === undefined ? {} : { lease: e.lease }),
    ...(e.queue === undefined ? {} : { pilotKey: queueKey(sessionId, e.queue) }),
    ...(e.unarmed ? { armed: null } : {}),
  };
}

function mustProgress(p: Progress<UnitState>): { passed: UnitState[] } {
  if (!p.ok) throw new BadParameter(`initial state: ${p.reason}`);
  return p;
}
