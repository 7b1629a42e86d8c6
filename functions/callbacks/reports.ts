/**
 * Agent state reports: checked as they arrive, and planned into as few guarded writes as possible.
 * Pure (no I/O), so the store tests replay reports through exactly what the route does.
 */

import { BadParameter } from '../../core/errors.ts';
import { groupBy } from '../../core/group.ts';
import { clipTail } from '../../core/output.ts';
import { armable, UnitState } from '../../core/states.ts';
import { type ArmReport, MAX_ACKS_PER_REQUEST, type StartReport, type UnitReport } from '../../core/wire.ts';
import type { TransitionOutcome, UnitPatch, UnitRecord, UnitTransition } from '../../store/index.ts';
import { MAX_ID_BYTES } from '../lib/http.ts';

const REPORTABLE = new Set<string>([
  UnitState.EXECUTING,
  // Entered when the agent starts a unit's output directives (refused for a unit without any).
  UnitState.STAGING_OUTPUT,
  UnitState.DONE,
  UnitState.FAILED,
  UnitState.CANCELED,
]);

/** A report as it arrives: the agent's shape, but not yet checked. */
export type Report = Omit<UnitReport, 'state' | 'time'> & { state: string; time?: string };

/** Reports per call: the agent sends at most 500; far more could not be applied within the function's timeout. */
const MAX_REPORTS = 5_000;

/** Optional report fields and the type each must have: anything else would reach the unit record as is. */
const FIELD_TYPES: Record<string, (v: unknown) => boolean> = {
  // A date: start times are compared (the earliest report wins), so free text must not get in.
  time: (v) => typeof v === 'string' && Number.isFinite(Date.parse(v)),
  exitCode: (v) => Number.isInteger(v),
  stdout: (v) => typeof v === 'string',
  stderr: (v) => typeof v === 'string',
  sandbox: (v) => typeof v === 'string',
  reason: (v) => typeof v === 'string',
  execLocations: (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'),
};

export function parseReports(v: unknown): Report[] {
  if (!Array.isArray(v)) throw new BadParameter('states.updates: must be a list');
  if (v.length > MAX_REPORTS)
    throw new BadParameter(`states.updates: at most ${MAX_REPORTS} per request, got ${v.length}`);
  return v.map((r, i) => {
    const o = r as Record<string, unknown>;
    if (
      typeof o?.uid !== 'string' ||
      Buffer.byteLength(o.uid) > MAX_ID_BYTES ||
      typeof o.state !== 'string' ||
      !REPORTABLE.has(o.state)
    ) {
      throw new BadParameter(
        `states.updates[${i}]: needs uid and a state in ${[...REPORTABLE].join(', ')}, got ${JSON.stringify(r)?.slice(0, 120)}`,
      );
    }
    for (const [field, ok] of Object.entries(FIELD_TYPES)) {
      if (o[field] !== undefined && !ok(o[field]))
        throw new BadParameter(
          `states.updates[${i}].${field}: wrong type, got ${JSON.stringify(o[field])?.slice(0, 80)}`,
        );
    }
    return o as unknown as Report;
  });
}

/**
 * The write-ahead of starts (`POST /agent/started`): uids with the lease they were pulled under and the
 * start's time, sandbox and nodes. Same limits and field checks as state reports; the lease is required
 * (a start without it could start a unit returned and claimed again by another pull).
 */
export function parseStarts(v: unknown): StartReport[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new BadParameter('started.starts: must be a list');
  if (v.length > MAX_REPORTS)
    throw new BadParameter(`started.starts: at most ${MAX_REPORTS} per request, got ${v.length}`);
  return v.map((r, i) => {
    const o = r as Record<string, unknown>;
    if (typeof o?.uid !== 'string' || Buffer.byteLength(o.uid) > MAX_ID_BYTES)
      throw new BadParameter(`started.starts[${i}]: needs a uid, got ${JSON.stringify(r)?.slice(0, 120)}`);
    if (typeof o.lease !== 'string' || o.lease.length === 0 || Buffer.byteLength(o.lease) > MAX_ID_BYTES)
      throw new BadParameter(
        `started.starts[${i}].lease: needs the lease the unit was pulled under, got ${JSON.stringify(o.lease ?? null)?.slice(0, 80)}`,
      );
    for (const field of ['time', 'sandbox', 'execLocations']) {
      const ok = FIELD_TYPES[field] as (x: unknown) => boolean;
      if (o[field] !== undefined && !ok(o[field]))
        throw new BadParameter(
          `started.starts[${i}].${field}: wrong type, got ${JSON.stringify(o[field])?.slice(0, 80)}`,
        );
    }
    parseHeld(o.held, `started.starts[${i}].held`);
    return o as unknown as StartReport;
  });
}

/**
 * Arms or disarms (`POST /agent/started` `arms`, `disarms`): uids with the lease they were pulled under,
 * nothing else. Same limits as starts; an absent list is an empty one.
 */
export function parseArms(v: unknown, field: 'arms' | 'disarms'): ArmReport[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new BadParameter(`started.${field}: must be a list`);
  if (v.length > MAX_REPORTS)
    throw new BadParameter(`started.${field}: at most ${MAX_REPORTS} per request, got ${v.length}`);
  return v.map((r, i) => {
    const o = r as Record<string, unknown>;
    if (typeof o?.uid !== 'string' || Buffer.byteLength(o.uid) > MAX_ID_BYTES)
      throw new BadParameter(`started.${field}[${i}]: needs a uid, got ${JSON.stringify(r)?.slice(0, 120)}`);
    if (typeof o.lease !== 'string' || o.lease.length === 0 || Buffer.byteLength(o.lease) > MAX_ID_BYTES)
      throw new BadParameter(
        `started.${field}[${i}].lease: needs the lease the unit was pulled under, got ${JSON.stringify(o.lease ?? null)?.slice(0, 80)}`,
      );
    // Only an arm can claim a held unit: a disarm is of a unit this agent armed, claimed by then.
    if (field === 'arms' && parseHeld(o.held, `started.arms[${i}].held`))
      return { uid: o.uid, lease: o.lease, held: true };
    if (field === 'disarms' && o.held !== undefined)
      throw new BadParameter(
        `started.disarms[${i}].held: a disarm is of a claimed unit, got ${JSON.stringify(o.held)?.slice(0, 40)}`,
      );
    return { uid: o.uid, lease: o.lease };
  });
}

/**
 * The `held` mark of a start or an arm (a unit the pull handed over unclaimed): true or absent.
 * @throws BadParameter naming the field and value
 */
function parseHeld(v: unknown, field: string): boolean {
  if (v === undefined) return false;
  if (v !== true) throw new BadParameter(`${field}: true or absent, got ${JSON.stringify(v)?.slice(0, 40)}`);
  return true;
}

/**
 * A pull's `hold` (agent/arm-ahead.ts): true hands the units that need a write-ahead beyond its `arm` over
 * held, unclaimed (each claimed later by the write that arms or starts it); absent or false claims them.
 * @throws BadParameter naming the field and value
 */
export function parseHold(v: unknown): boolean {
  if (v === undefined || v === false) return false;
  if (v !== true) throw new BadParameter(`pull.hold: true or false, got ${JSON.stringify(v)?.slice(0, 40)}`);
  return true;
}

/**
 * How many of the units a pull claims its agent asks to have armed by the claim (agent/arm-ahead.ts): a
 * count from 0 to the pull's `max`; absent is 0.
 */
export function parseArmCount(v: unknown, max: number): number {
  if (v === undefined) return 0;
  if (!Number.isInteger(v) || (v as number) < 0)
    throw new BadParameter(
      `pull.arm: a count of units to arm (an integer from 0), got ${JSON.stringify(v)?.slice(0, 40)}`,
    );
  return Math.min(v as number, max);
}

/** Which of a pull's units its claim arms: the first `n` that can be armed (core/states.ts `armable`). */
export function firstArmable(descriptions: readonly Parameters<typeof armable>[0][], n: number): boolean[] {
  let left = n;
  return descriptions.map((d) => {
    if (left <= 0 || !armable(d)) return false;
    left--;
    return true;
  });
}

/**
 * The write-ahead as guarded writes: one SCHEDULING → EXECUTING per unit, only on the agent's own pilot and
 * only under the lease the unit was pulled with: a unit whose lease expired was returned to its queue, and
 * if another pull claimed it since, that pull's agent alone may start it (at most one run).
 */
export function planStarts(starts: StartReport[], pilotId: string): UnitTransition[] {
  return starts.map((s) =>
    s.held
      ? {
          // Handed over held (the pull's `hold`): the start is its claim, one write from the queue to
          // EXECUTING (SCHEDULING recorded as passed), on this pilot only. Its agent is the only one that
          // holds it (the pilot's queue message is gone), so no lease stands between them; if its arm
          // claimed it meanwhile, the read finds it SCHEDULING on this pilot and starts it from there.
          uid: s.uid,
          target: UnitState.EXECUTING,
          patch: patchOf({ ...s, state: UnitState.EXECUTING }),
          expect: { pilot: pilotId },
          presume: UnitState.PENDING_EXECUTION,
        }
      : {
          uid: s.uid,
          target: UnitState.EXECUTING,
          patch: patchOf({ ...s, state: UnitState.EXECUTING }),
          expect: { pilot: pilotId, lease: s.lease },
          // Claimed: written without a read first (a unit that stages its inputs is read: it is StagingInput).
          presume: UnitState.SCHEDULING,
        },
  );
}

/**
 * Arms of held units as their claims (the pull's `hold`): PENDING_EXECUTION → SCHEDULING, armed and
 * leased to the pull's lease in the same write, on this pilot only (presumed queued: no read first).
 */
export function planHeldArms(
  arms: readonly ArmReport[],
  pilotId: string,
  leaseUntil: number,
): UnitTransition[] {
  return arms.map((a) => ({
    uid: a.uid,
    target: UnitState.SCHEDULING,
    patch: { lease: a.lease, leaseUntil, armed: true as const },
    expect: { pilot: pilotId },
    presume: UnitState.PENDING_EXECUTION,
  }));
}

/**
 * Whether a held unit's arm took, from its claim's outcome: claimed now, or found claimed, armed and
 * leased as this arm asked on this pilot (the same arm sent again after its answer was lost).
 */
export function heldArmTook(
  arm: ArmReport,
  out: TransitionOutcome<UnitRecord, UnitState> | undefined,
  pilotId: string,
): boolean {
  if (!out) return false;
  if (out.ok) return true;
  const c = out.current;
  return (
    c?.state === UnitState.SCHEDULING && c.pilot === pilotId && c.lease === arm.lease && c.armed === true
  );
}

/**
 * The uids the agent may spawn, from the outcomes of {@link planStarts} (same order). A unit already
 * EXECUTING on this pilot was moved by this same request sent before (a retry whose answer was lost):
 * it counts as started. Anything else refused (cancelled, rescheduled to another pilot, final) must not
 * be spawned.
 */
export function startedOf(
  starts: readonly StartReport[],
  outs: readonly TransitionOutcome<UnitRecord, UnitState>[],
  pilotId: string,
): string[] {
  return outs.flatMap((o, i) => {
    const uid = starts[i]?.uid ?? '';
    if (o.ok) return [uid];
    const c = o.current;
    return c?.state === UnitState.EXECUTING && c.pilot === pilotId ? [uid] : [];
  });
}

function patchOf(r: Report): UnitPatch {
  // The agent sends the tails already cut (64 KiB, marked); an oversized report is cut the same way.
  const clip = (s: string | undefined) => (s === undefined ? undefined : clipTail(s));
  const p: UnitPatch = {};
  if (r.state === UnitState.STAGING_OUTPUT) return p; // the facts come with the end
  if (r.state === UnitState.EXECUTING) {
    if (r.time) p.started = r.time;
    if (r.sandbox) p.sandbox = r.sandbox;
    if (r.execLocations) p.execLocations = r.execLocations;
  } else {
    if (r.time) p.finished = r.time;
    if (typeof r.exitCode === 'number') p.exitCode = r.exitCode;
    const out = clip(r.stdout);
    const err = clip(r.stderr);
    if (out !== undefined) p.stdout = out;
    if (err !== undefined) p.stderr = err;
    if (r.reason) p.appendLog = [r.reason];
  }
  return p;
}

/**
 * What a report presumes its unit is in on the common path, so that its write needs no read first
 * (store/units.ts `presume`): a start follows the claim, an end follows the start. A report that finds
 * its unit elsewhere (a late or repeated report) is read and decided as usual, after a failed write that
 * DynamoDB bills like any other; so CANCELED, mostly reported of units the agent held unstarted and the
 * table has cancelled already, and output staging are not presumed.
 */
function presumedBefore(state: UnitState): { presume?: UnitState } {
  if (state === UnitState.EXECUTING) return { presume: UnitState.SCHEDULING };
  if (state === UnitState.DONE || state === UnitState.FAILED) return { presume: UnitState.EXECUTING };
  return {};
}

function roundAt<T>(rounds: T[][], i: number): T[] {
  rounds[i] ??= [];
  return rounds[i];
}

/**
 * Turns reports into as few guarded writes as possible, in rounds that keep each unit's order: an
 * EXECUTING followed by DONE in one batch becomes one write to DONE (the passed states, EXECUTING
 * included, are still recorded); anything else is applied report by report.
 */
export function planRounds(reports: Report[], pilotId: string): UnitTransition[][] {
  const perUnit = groupBy(reports, (r) => r.uid);
  const rounds: UnitTransition[][] = [];
  for (const [uid, rs] of perUnit) {
    const [a, b] = rs;
    if (rs.length === 2 && a?.state === UnitState.EXECUTING && b?.state === UnitState.DONE) {
      const merged: UnitTransition = {
        uid,
        target: UnitState.DONE,
        patch: { ...patchOf(a), ...patchOf(b) },
        expect: { pilot: pilotId },
        report: true,
        presume: UnitState.SCHEDULING,
      };
      roundAt(rounds, 0).push(merged);
      continue;
    }
    rs.forEach((r, i) => {
      roundAt(rounds, i).push({
        uid,
        target: r.state as UnitState,
        patch: patchOf(r),
        expect: { pilot: pilotId },
        report: true,
        ...presumedBefore(r.state as UnitState),
      });
    });
  }
  return rounds;
}

/** Longest receipt handle an ack may carry (SQS's are a few hundred bytes). */
const MAX_RECEIPT_BYTES = 8192;

/**
 * An agent's acks (`acks`, any agent route): receipts of queue messages a pull of it answered with
 * `ackLater`. An absent list is an empty one.
 * @throws BadParameter naming the field and value
 */
export function parseAcks(v: unknown): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v))
    throw new BadParameter(`acks: must be a list of receipts, got ${JSON.stringify(v)?.slice(0, 80)}`);
  if (v.length > MAX_ACKS_PER_REQUEST)
    throw new BadParameter(`acks: at most ${MAX_ACKS_PER_REQUEST} per request, got ${v.length}`);
  return v.map((r, i) => {
    if (typeof r !== 'string' || r.length === 0 || Buffer.byteLength(r) > MAX_RECEIPT_BYTES)
      throw new BadParameter(`acks[${i}]: must be a receipt handle, got ${JSON.stringify(r)?.slice(0, 80)}`);
    return r;
  });
}
