/**
 * Unit submission, shared by the HTTP API and event-triggered submissions: validate, bind to pilots
 * (the unit manager's scheduler), store in bulk, and queue many units per SQS message.
 */
import { type ComputeUnitDescription, parseUnitDescriptions } from '../../core/descriptions.ts';
import { BadParameter } from '../../core/errors.ts';
import { groupBy } from '../../core/group.ts';
import type { ResourceRegistry } from '../../core/resource-registry.ts';
import { bindsLate, bindUnits, type SchedulerName } from '../../core/schedulers.ts';
import { type PilotSize, tooBigForPilot } from '../../core/slots.ts';
import { StagingAction, unbuiltDirective } from '../../core/staging.ts';
import { isFinal, pendingState, pilotModel, UnitState } from '../../core/states.ts';
import { inputObjectProblem } from '../../core/transfer.ts';
import type { PilotRecord, UnitRecord } from '../../store/index.ts';
import { wakeQueue } from './backfill.ts';
import { logger } from './log.ts';
import { sendUnits } from './queues.ts';
import { sessionResources } from './resources.ts';
import { store } from './store.ts';

/**
 * A pilot's size for the submit check, from its description and resource config (recorded on the pilot at
 * its creation, {@link PilotRecord.unitLimit}): node sizes only count on batch resources without
 * oversubscription; 'none' when the check is the agent's alone.
 */
export function unitLimit(
  registry: ResourceRegistry,
  d: { resource: string; cores: number; gpus?: number | undefined },
): PilotSize | 'none' {
  let rc: ReturnType<ResourceRegistry['get']>;
  try {
    rc = registry.get(d.resource);
  } catch {
    return 'none'; // a config this function cannot see: the agent judges
  }
  if (rc.oversubscribe) return 'none';
  const batch = rc.jobManager !== 'fork';
  return {
    cores: d.cores,
    ...(d.gpus !== undefined ? { gpus: d.gpus } : {}),
    ...(batch ? { coresPerNode: rc.coresPerNode, gpusPerNode: rc.gpusPerNode } : {}),
  };
}

/** Units accepted per request: clients chunk (the SDK sends 2,000 at a time). */
export const MAX_UNITS_PER_REQUEST = 5_000;

/** What a submission reads before its first write: the manager and its live pilots, with their unit limits. */
export interface SubmitReads {
  umgr: Awaited<ReturnType<ReturnType<typeof store>['getUnitManager']>>;
  /** The manager's pilots that have not ended (none read for a late-binding manager). */
  livePilots: PilotRecord[];
  /** Each live pilot's {@link unitLimit} (undefined: the agent judges). */
  limits: ReadonlyMap<string, PilotSize | undefined>;
}

/**
 * The reads of a submission, as few and as parallel as they can be. They write nothing, so a route may
 * start them before the token is checked and the request claimed, and use them after (see the submit
 * route). `hint`: the pilots the client believes the manager has (the SDK remembers them from its
 * addPilots, removePilots and listPilots answers): read with the manager in one request, and used when
 * the manager names exactly those, which saves the round trip of reading its pilots after it; any other
 * answer reads the manager's own pilots. The session's resource configs are read only for pilots created
 * before their unit limit was recorded on them.
 * @throws DoesNotExist (no such manager), DatabaseError
 */
export async function submitReads(
  sessionId: string,
  umid: string,
  hint?: readonly string[],
): Promise<SubmitReads> {
  // With a hint, the manager and the hinted pilots are one read.
  const { umgr, pilots: guessed } = hint?.length
    ? await store().getUnitManagerWithPilots(sessionId, umid, hint)
    : { umgr: await store().getUnitManager(sessionId, umid), pilots: undefined };
  let pilots: PilotRecord[] = [];
  if (!bindsLate(umgr.scheduler) && umgr.pilots.length) {
    const same =
      guessed && hint?.length === umgr.pilots.length && umgr.pilots.every((p) => hint.includes(p))
        ? guessed
        : undefined;
    // In the manager's order, as if read for it: round robin cycles over them in that order.
    const byUid = same && new Map(same.map((p) => [p.uid, p]));
    pilots = byUid
      ? umgr.pilots.map((uid) => byUid.get(uid) as PilotRecord)
      : await store().getPilots(sessionId, umgr.pilots);
  }
  const livePilots = pilots.filter((p) => !isFinal(pilotModel, p.state));
  const registry = livePilots.some((p) => p.unitLimit === undefined)
    ? await sessionResources(sessionId)
    : undefined;
  const limits = new Map(
    livePilots.map((p) => {
      const limit = p.unitLimit ?? unitLimit(registry as ResourceRegistry, p.description);
      return [p.uid, limit === 'none' ? undefined : limit] as const;
    }),
  );
  return { umgr, livePilots, limits };
}

/** Most pilots a submission's `pilots` hint may name (a manager with more is read as it is). */
const MAX_HINTED_PILOTS = 100;

/**
 * The `pilots` of a submission's body: the manager's pilot uids as the client believes them to be (absent:
 * none); a BadParameter naming the field and value when it is not a list of at most
 * {@link MAX_HINTED_PILOTS} pilot uids (returned, not thrown: the route refuses it after the token check).
 */
export function pilotsHint(raw: unknown): string[] | undefined | BadParameter {
  if (raw === undefined) return undefined;
  if (
    !Array.isArray(raw) ||
    raw.length > MAX_HINTED_PILOTS ||
    !raw.every((p) => typeof p === 'string' && /^pilot\.[0-9]{4,}$/.test(p))
  )
    return new BadParameter(
      `submitUnits.pilots: must be a list of at most ${MAX_HINTED_PILOTS} pilot uids, got ${JSON.stringify(raw).slice(0, 120)}`,
    );
  return raw as string[];
}

/**
 * The descriptions of a submission, parsed and checked: at most {@link MAX_UNITS_PER_REQUEST}, none empty,
 * no staging directive that is not built. Needs no read, so a route may check them before anything else.
 * @throws BadParameter naming the field and value
 */
export function parseSubmission(sessionId: string, raw: unknown): ComputeUnitDescription[] {
  if (Array.isArray(raw) && raw.length > MAX_UNITS_PER_REQUEST) {
    throw new BadParameter(
      `submitUnits.descriptions: at most ${MAX_UNITS_PER_REQUEST} per request, got ${raw.length}; send them in chunks`,
    );
  }
  const descriptions = parseUnitDescriptions(raw);
  if (descriptions.length === 0) throw new BadParameter('submitUnits.descriptions: must not be empty');
  // What is not built is refused here, never accepted and ignored.
  descriptions.forEach((d, i) => {
    for (const key of ['inputStaging', 'outputStaging'] as const)
      d[key]?.forEach((x, j) => {
        const field = `${key}[${j}]`;
        const why =
          unbuiltDirective(x, field, key === 'inputStaging' ? 'input' : 'output') ??
          (key === 'inputStaging' && x.action === StagingAction.TRANSFER
            ? inputObjectProblem(x.object, sessionId, field)
            : undefined);
        if (why) throw new BadParameter(`submitUnits.descriptions[${i}].${why}`);
      });
  });
  return descriptions;
}

/**
 * Submits unit descriptions (raw, validated here) to a unit manager of an open session.
 * @throws BadParameter naming the field and value, DoesNotExist, IncorrectState (closed session)
 */
export function submitUnits(sessionId: string, umid: string, raw: unknown): Promise<UnitRecord[]> {
  return submitParsed(sessionId, umid, parseSubmission(sessionId, raw));
}

/**
 * Submits descriptions checked by {@link parseSubmission}. `reads`: the session's {@link submitReads},
 * when the caller started them already; `reserved`: the units' uids, when the caller reserved them
 * already (one per description, in order: store/sessions.ts reserveIds).
 * @throws BadParameter naming the field and value, DoesNotExist, IncorrectState (closed session)
 */
export async function submitParsed(
  sessionId: string,
  umid: string,
  descriptions: readonly ComputeUnitDescription[],
  reads?: Promise<SubmitReads>,
  reserved?: Promise<readonly string[]>,
  /** Told the units once they are written, before they are queued (functions/lib/idempotency.ts `settled`). */
  written?: (units: readonly UnitRecord[]) => void,
): Promise<UnitRecord[]> {
  // The session's being open is not read here: reserving the uids is a write guarded on it
  // (store/sessions.ts reserveIds), which refuses a closed one the same way.
  const { umgr, livePilots, limits } = await (reads ?? submitReads(sessionId, umid));
  if (bindsLate(umgr.scheduler)) return submitLate(sessionId, umid, descriptions, reserved);
  const live = livePilots.map((p) => p.uid);
  // Round robin continues where the manager's previous submission stopped (RP keeps its index).
  const start =
    umgr.scheduler === 'round_robin' && live.length > 1
      ? await store().advanceRoundRobin(sessionId, umid, descriptions.length)
      : 0;
  const binding = bindUnits(umgr.scheduler as SchedulerName, live, descriptions.length, start);
  // A unit bound to a pilot that can never hold it is refused now, not accepted to fail later.
  descriptions.forEach((d, i) => {
    const pid = binding.pilots[i] as string;
    const size = limits.get(pid);
    const why = size && tooBigForPilot({ cores: d.cores, gpus: d.gpus ?? 0, mpi: d.mpi === true }, size);
    if (why) throw new BadParameter(`submitUnits.descriptions[${i}]: bound to ${pid}: ${why}`);
  });
  const units = await store().createUnits(
    sessionId,
    umid,
    descriptions.map((description, i) => ({
      description,
      // RP 0.22's UM controller: NEW → PENDING_INPUT_STAGING when the unit has input directives.
      state: pendingState(description),
      pilot: binding.pilots[i] as string,
    })),
    true,
    reserved,
  );
  written?.(units);
  return queueBound(sessionId, units);
}

/**
 * Sends units bound to pilots to their pilots' queues, grouped by pilot; returns the units, those that
 * could not be queued now FAILED (accepted units must not hang: they fail, saying why). Only from their
 * pending state: a repeat's units may have been claimed since they were read (their first attempt did
 * queue them), and a unit an agent runs is not failed for a message it did not need.
 */
async function queueBound(sessionId: string, units: readonly UnitRecord[]): Promise<UnitRecord[]> {
  const byPilot = groupBy(units, (u) => u.pilot as string);
  const failed = new Map<string, UnitRecord>();
  await Promise.all(
    [...byPilot].map(async ([pid, us]) => {
      try {
        await sendUnits(
          sessionId,
          pid,
          us.map((u) => ({ uid: u.uid, ...(u.name ? { name: u.name } : {}), description: u.description })),
        );
      } catch (err) {
        const outs = await store().transitionUnits(
          sessionId,
          us.map((u) => ({
            uid: u.uid,
            target: UnitState.FAILED,
            from: pendingState(u.description),
            patch: { appendLog: [`could not be queued for ${pid}: ${(err as Error).message}`] },
          })),
        );
        for (const o of outs) if (o.ok) failed.set(o.record.uid, o.record);
      }
    }),
  );
  return units.map((u) => failed.get(u.uid) ?? u);
}

/**
 * The units of a replayed submission (a repeat of its request token), queued again where no agent has
 * claimed them yet: bound to a pilot, still in their pending state, unleased. The first attempt settled
 * its answer once the units were written, before queueing them (functions/lib/idempotency.ts `settled`):
 * if it died between the two (a Lambda stopped at its timeout), nothing else would queue them before
 * their pilot ended. A unit queued twice is claimed once (claims are guarded writes), so a repeat of a
 * submission that was queued costs at most one refused claim per unit still waiting.
 */
export function requeueUnclaimed(sessionId: string, units: readonly UnitRecord[]): Promise<UnitRecord[]> {
  const waiting = units.filter(unclaimedBound);
  if (waiting.length === 0) return Promise.resolve([...units]);
  return queueBound(sessionId, waiting).then((queued) => {
    const now = new Map(queued.map((u) => [u.uid, u]));
    return units.map((u) => now.get(u.uid) ?? u);
  });
}

/** A unit bound to a pilot that no agent has claimed: what a pilot's queue must hold. */
export function unclaimedBound(u: UnitRecord): boolean {
  return u.pilot !== undefined && u.lease === undefined && u.state === pendingState(u.description);
}

/**
 * Late binding (backfilling): the units wait UNSCHEDULED in the manager's queue, bound to no pilot, until
 * an agent with room claims them (functions/lib/backfill.ts). No pilot is needed at submit (RP's
 * backfiller keeps its wait queue until one comes). The manager's ACTIVE pilots are woken to pull.
 */
async function submitLate(
  sessionId: string,
  umid: string,
  descriptions: readonly ComputeUnitDescription[],
  reserved: Promise<readonly string[]> | undefined,
): Promise<UnitRecord[]> {
  const units = await store().createUnits(
    sessionId,
    umid,
    descriptions.map((description) => ({ description, state: UnitState.UNSCHEDULED, queued: true })),
    true,
    reserved,
  );
  // The units are safe in the queue; a failed wake-up only delays them to the agents' next pull.
  await wakeQueue(sessionId, umid).catch((err: unknown) =>
    logger.warn('queue wake-up failed', { sessionId, umid, error: String(err) }),
  );
  return units;
}
