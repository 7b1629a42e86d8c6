/**
 * Guarded writes: the only way a state or a guarded field changes.
 *
 * A state change is ONE UpdateItem whose condition is `#state = :current` (the state read just before)
 * plus the caller's equality guards; it sets the state, appends every passed state to the history (one step) and
 * applies the patch in the same write. Timeline of two writers racing on one unit in Executing:
 *
 * ```
 *   A: read Executing ── decide Done ── write (state = Executing ✓) ─────────────── ok
 *   B: read Executing ── decide Failed ─────────── write (state = Executing ✗) ── re-read Done
 *                                                                                 decide Failed: refused
 * ```
 * B re-reads and asks the state model again, so a write is retried only while it is still a progress:
 * exactly one of many conflicting writers wins, and the history gets each state once.
 */
import { UpdateCommand, type UpdateCommandOutput } from '@aws-sdk/lib-dynamodb';
import { DoesNotExist, IncorrectState } from '../core/errors.ts';
import {
  isFinal,
  type PilotState,
  type Progress,
  pilotModel,
  type UnitState,
  unitModel,
} from '../core/states.ts';
import { getItem, type StoreContext } from './context.ts';
import { ConditionFailed } from './db.ts';
import { Update } from './expr.ts';
import { changedKey, PK } from './keys.ts';
import { notify } from './observer.ts';
import { HISTORY, historyStep, type Item } from './records.ts';

/** A write that was refused: the typed error, and the record as it was when refused (if it exists). */
export interface Refusal<R> {
  ok: false;
  error: IncorrectState<R> | DoesNotExist;
  current?: R;
}

/** Result of a guarded state change. */
export type TransitionOutcome<R, S> = { ok: true; record: R; passed: S[] } | Refusal<R>;

/** Result of a guarded field update. */
export type PatchOutcome<R> = { ok: true; record: R } | Refusal<R>;

/**
 * Guards: attribute → value it must hold (e.g. `{pilot: 'pilot.0001'}`), or null: the attribute must be
 * absent (e.g. `{armed: null}`: a unit not armed to start, store/units.ts).
 */
export type Expect = Readonly<Record<string, string | null>>;

/** One guarded state change, described for {@link applyTransition}. */
export interface TransitionSpec<S extends string, R> {
  what: 'pilot' | 'unit';
  pk: string;
  uid: string;
  /** The state asked for, when there is one (for observers: e.g. a refused claim). */
  target?: S;
  /**
   * The move from the current state, or why not (core/states.ts `progress` or `reschedule`); `item` is
   * the record as read (a unit's path depends on its description's staging directives).
   */
  decide(current: S, item: Item): Progress<S>;
  expect?: Expect;
  /** Add the patch's clauses; `entered` are the states this write enters. */
  patch(u: Update, entered: readonly S[], now: string): void;
  /**
   * When `decide` refuses (the state is already passed) but the change carries facts the record still
   * lacks, e.g. a late report's sandbox: add the clauses that keep them and return true; false when there
   * is nothing to keep. The state is not changed; the write is guarded by `changed`, as read.
   */
  late?(u: Update, item: Item, now: string): boolean;
  toRecord(item: Item): R;
}

/**
 * An item not read but presumed (see {@link applyTransitionFrom}): the state the writer expects, and what
 * else the decision reads of it. `pin` adds to the write's condition everything the decision read besides
 * the state and the expected attributes (for a unit: that it has no staging directives), so that any real
 * item the write can land on would have been decided the same way.
 */
export interface Presumption {
  item: Item;
  pin(u: Update): void;
}

/** Retries after a lost race; each retry means another writer moved the state, so few are ever needed. */
const MAX_ATTEMPTS = 16;

/**
 * Apply one state change, starting from `current` (the item as read just before, or undefined).
 * Never throws for a refused change; throws DatabaseError only when DynamoDB fails.
 */
export async function applyTransition<S extends string, R>(
  ctx: StoreContext,
  spec: TransitionSpec<S, R>,
  current: Item | undefined,
): Promise<TransitionOutcome<R, S>> {
  return (await applyTransitionFrom(ctx, spec, current)).outcome;
}

/**
 * {@link applyTransition}, also returning the item as last seen (written or re-read), for a next change.
 *
 * `current` may be a {@link Presumption} instead of a read item: the write then goes out without a read
 * before it (one round trip and one read fewer per change on the common path: a claim presumes the unit
 * queued, a start presumes it claimed, an end presumes it executing). Nothing is ever refused on a
 * presumption: when the presumed state would not move, or the write's condition fails because the item
 * is not as presumed, the item is read and decided as usual.
 */
export async function applyTransitionFrom<S extends string, R>(
  ctx: StoreContext,
  spec: TransitionSpec<S, R>,
  current: Item | Presumption | undefined,
): Promise<{ outcome: TransitionOutcome<R, S>; item: Item | undefined }> {
  let presumed = isPresumption(current) ? current : undefined;
  let item = isPresumption(current) ? current.item : current;
  const done = (outcome: TransitionOutcome<R, S>) => {
    const o = ctx.observer;
    if (o)
      notify(() =>
        outcome.ok ? o.transitioned?.(spec.what, outcome.passed) : o.refused?.(spec.what, spec.target),
      );
    return { outcome, item };
  };
  for (let attempt = 0; ; attempt++) {
    if (!item) return done(missing(spec.what, spec.uid));
    const seen = item;
    // Made only for a refusal (decoding the history is work a write that succeeds does not need).
    const record = () => spec.toRecord(seen);
    const mismatch = presumed ? undefined : expectMismatch(spec.expect, item);
    if (mismatch) return done(refuse(`${spec.what} ${spec.uid}: ${mismatch}`, spec.uid, record()));
    const state = item.state as S;
    const move = spec.decide(state, item);
    if (presumed && !move.ok) {
      presumed = undefined;
      item = await getItem(ctx, spec.pk);
      continue;
    }
    const now = ctx.now();
    const late = new Update().set('changed', changedKey(now, spec.uid));
    const why = move.ok ? undefined : `${spec.uid}: ${move.reason}`;
    if (why !== undefined && !spec.late?.(late, item, now)) return done(refuse(why, spec.uid, record()));
    if (attempt >= MAX_ATTEMPTS) {
      return done(refuse(`${spec.uid}: gave up after ${attempt} conflicting writes`, spec.uid, record()));
    }
    if (!move.ok) {
      // The state stays refused; the facts are kept. Guarded by `changed` because they were computed
      // from this very item (a history step may be inserted), so any write in between means recompute.
      late.when((c) => `${c.path('changed')} = ${c.value(item?.changed)}`);
      addExpect(late, spec.expect);
      try {
        item = await sendUpdate(ctx, spec.pk, late);
        return done(refuse(why as string, spec.uid, spec.toRecord(item)));
      } catch (e) {
        if (!(e instanceof ConditionFailed)) throw e;
        item = await getItem(ctx, spec.pk);
        continue;
      }
    }
    const u = new Update()
      .set('state', move.state)
      .set('changed', changedKey(now, spec.uid))
      .when((c) => `${c.path('state')} = ${c.value(state)}`);
    // A retried step (core/states.ts progressOrStay) enters nothing: its history gains no step.
    if (move.passed.length) u.append(HISTORY, [historyStep(move.passed, now)]);
    addExpect(u, spec.expect);
    presumed?.pin(u);
    spec.patch(u, move.passed, now);
    try {
      item = await sendUpdate(ctx, spec.pk, u);
      return done({ ok: true, record: spec.toRecord(item), passed: move.passed });
    } catch (e) {
      if (!(e instanceof ConditionFailed)) throw e;
      presumed = undefined;
      item = await getItem(ctx, spec.pk);
    }
  }
}

/** One guarded update of non-state fields. */
export interface PatchSpec<S extends string, R> {
  what: 'pilot' | 'unit';
  pk: string;
  uid: string;
  /** Write only while the state is one of these (any state when absent). */
  states?: readonly S[];
  expect?: Expect;
  patch(u: Update, now: string): void;
  toRecord(item: Item): R;
  /**
   * Not a change anyone watches (e.g. a unit's arm mark): `changed` is left as it is, so the item's
   * change-feed index entry is rewritten in place rather than moved (a delete and a put) and no watcher
   * wakes.
   */
  quiet?: boolean;
}

/**
 * Apply a field update in one conditional UpdateItem (exists, state in `states`, `expect` holds).
 * On refusal, one consistent read tells why and supplies the current record.
 */
export async function applyPatch<S extends string, R>(
  ctx: StoreContext,
  spec: PatchSpec<S, R>,
): Promise<PatchOutcome<R>> {
  const now = ctx.now();
  const u = new Update().when((c) => `attribute_exists(${c.path(PK)})`);
  if (!spec.quiet) u.set('changed', changedKey(now, spec.uid));
  if (spec.states) {
    const states = spec.states;
    u.when((c) => `${c.path('state')} IN (${states.map((s) => c.value(s)).join(', ')})`);
  }
  addExpect(u, spec.expect);
  spec.patch(u, now);
  try {
    return { ok: true, record: spec.toRecord(await sendUpdate(ctx, spec.pk, u)) };
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
  }
  const item = await getItem(ctx, spec.pk);
  if (!item) return missing(spec.what, spec.uid);
  const record = spec.toRecord(item);
  const why =
    expectMismatch(spec.expect, item) ??
    `is ${String(item.state)}, not ${spec.states?.join(' or ') ?? 'any state'} (changed meanwhile?)`;
  return refuse(`${spec.what} ${spec.uid}: ${why}`, spec.uid, record);
}

async function sendUpdate(ctx: StoreContext, pk: string, u: Update): Promise<Item> {
  const out = await ctx.db.send<UpdateCommandOutput>(
    'UpdateItem',
    new UpdateCommand({
      TableName: ctx.db.tableName,
      Key: { [PK]: pk },
      ReturnValues: 'ALL_NEW',
      ...u.build(),
    }),
  );
  const item = out.Attributes ?? {};
  const o = ctx.observer;
  if (o?.wrote && typeof item.parent === 'string') {
    const parent = item.parent;
    const final =
      item.kind === 'pilot'
        ? isFinal(pilotModel, item.state as PilotState)
        : isFinal(unitModel, item.state as UnitState);
    notify(() => o.wrote?.(parent, final));
  }
  return item;
}

function isPresumption(v: Item | Presumption | undefined): v is Presumption {
  return typeof (v as Presumption | undefined)?.pin === 'function';
}

function addExpect(u: Update, expect: Expect | undefined): void {
  for (const [attr, value] of Object.entries(expect ?? {})) {
    if (value === null) u.when((c) => `attribute_not_exists(${c.path(attr)})`);
    else u.when((c) => `${c.path(attr)} = ${c.value(value)}`);
  }
}

function expectMismatch(expect: Expect | undefined, item: Item): string | undefined {
  for (const [attr, value] of Object.entries(expect ?? {})) {
    if (value === null ? item[attr] !== undefined : item[attr] !== value)
      return `${attr} is ${JSON.stringify(item[attr] ?? null)}, expected ${value === null ? 'none' : JSON.stringify(value)}`;
  }
  return undefined;
}

function refuse<R>(message: string, uid: string, current: R): Refusal<R> {
  return { ok: false, error: new IncorrectState<R>(message, { obj: uid, current }), current };
}

function missing<R>(what: string, uid: string): Refusal<R> {
  return { ok: false, error: new DoesNotExist(`${what} ${uid} does not exist`, { obj: uid }) };
}
