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
import type { UnitRecord } from '../../store/index.ts';
import { wakeQueue } from './backfill.ts';
import { logger } from './log.ts';
import { sendUnits } from './queues.ts';
import { sessionResources } from './resources.ts';
import { store } from './store.ts';

/** A pilot's size for the submit check: node sizes only count on batch resources without oversubscription. */
function pilotSize(
  registry: ResourceRegistry,
  d: { resource: string; cores: number; gpus?: number | undefined },
): PilotSize | undefined {
  let rc: ReturnType<ResourceRegistry['get']>;
  try {
    rc = registry.get(d.resource);
  } catch {
    return undefined; // a config this function cannot see: the agent judges
  }
  if (rc.oversubscribe) return undefined;
  const batch = rc.jobManager !== 'fork';
  return {
    cores: d.cores,
    ...(d.gpus !== undefined ? { gpus: d.gpus } : {}),
    ...(batch ? { coresPerNode: rc.coresPerNode, gpusPerNode: rc.gpusPerNode } : {}),
  };
}

/** Units accepted per request: clients chunk (the SDK sends 2,000 at a time). */
export const MAX_UNITS_PER_REQUEST = 5_000;

/** What a submission reads before its first write: the manager, the session's resource configs, its live pilots. */
export interface SubmitReads {
  umgr: Awaited<ReturnType<ReturnType<typeof store>['getUnitManager']>>;
  registry: ResourceRegistry;
  /** The manager's pilots that have not ended (none read for a late-binding manager). */
  livePilots: Awaited<ReturnType<ReturnType<typeof store>['getPilots']>>;
}

/**
 * The reads of a submission, as few and as parallel as they can be: the manager and the session's
 * resource configs together, then its pilots. They write nothing, so a route may start them before the
 * token is checked and the request claimed, and use them after (see the submit route).
 * @throws DoesNotExist (no such manager), DatabaseError
 */
export async function submitReads(sessionId: string, umid: string): Promise<SubmitReads> {
  const [umgr, registry] = await Promise.all([
    store().getUnitManager(sessionId, umid),
    sessionResources(sessionId),
  ]);
  const livePilots =
    !bindsLate(umgr.scheduler) && umgr.pilots.length
      ? (await store().getPilots(sessionId, umgr.pilots)).filter((p) => !isFinal(pilotModel, p.state))
      : [];
  return { umgr, registry, livePilots };
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
): Promise<UnitRecord[]> {
  // The session's being open is not read here: reserving the uids is a write guarded on it
  // (store/sessions.ts reserveIds), which refuses a closed one the same way.
  const { umgr, registry, livePilots } = await (reads ?? submitReads(sessionId, umid));
  if (bindsLate(umgr.scheduler)) return submitLate(sessionId, umid, descriptions, reserved);
  const live = livePilots.map((p) => p.uid);
  // Round robin continues where the manager's previous submission stopped (RP keeps its index).
  const start =
    umgr.scheduler === 'round_robin' && live.length > 1
      ? await store().advanceRoundRobin(sessionId, umid, descriptions.length)
      : 0;
  const binding = bindUnits(umgr.scheduler as SchedulerName, live, descriptions.length, start);
  // A unit bound to a pilot that can never hold it is refused now, not accepted to fail later.
  const sizes = new Map(livePilots.map((p) => [p.uid, pilotSize(registry, p.description)]));
  descriptions.forEach((d, i) => {
    const pid = binding.pilots[i] as string;
    const size = sizes.get(pid);
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
        // Accepted units must not hang: if they cannot be queued they fail, saying why.
        const outs = await store().transitionUnits(
          sessionId,
          us.map((u) => ({
            uid: u.uid,
            target: UnitState.FAILED,
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
