/**
 * The agent routes: activation, unit pulls (claims), batched state reports, heartbeats and the agent's
 * end. Pulls, reports, heartbeats and `/agent/commands` all carry the pilot's new commands back (see
 * commands.ts); a cancel wakes a long-polling pull at once. Authenticated by the pilot token; an agent can touch only its
 * own pilot and the units bound to it.
 */

import { randomUUID } from 'node:crypto';
import { parseFreeRoom } from '../../core/backfill.ts';
import { IncorrectState } from '../../core/errors.ts';
import { armable, claimState, isFinal, PilotState, pilotModel, UnitState } from '../../core/states.ts';
import { ATTEMPT_HEADER, type NodeDetail } from '../../core/wire.ts';
import type { UnitRecord } from '../../store/index.ts';
import { authAgent } from '../lib/auth.ts';
import { claimQueued, type QueueClaim } from '../lib/backfill.ts';
import { httpHandler, MAX_ID_BYTES } from '../lib/http.ts';
import { logger } from '../lib/log.ts';
import { heartbeatSeconds, heartbeatToken, leaseSeconds, succeedToken } from '../lib/pilots.ts';
import { deleteReceived, type QueuedUnit, receiveUnits, sendUnits } from '../lib/queues.ts';
import { store } from '../lib/store.ts';
import { agentTransfer } from '../lib/transfer-routes.ts';
import { commandsFor, commandsSeen, trimmable } from './commands.ts';
import {
  firstArmable,
  heldArmTook,
  parseAcks,
  parseArmCount,
  parseArms,
  parseHold,
  parseReports,
  parseStarts,
  planHeldArms,
  planRounds,
  planStarts,
  startedOf,
} from './reports.ts';

/** Small units travel ~100–160 to a message (queues.ts packs 24 KiB); a guess is enough to size a receive. */
const UNITS_PER_MESSAGE_GUESS = 100;

/** The agent's per-node view (name, cores, GPUs), kept only when well-formed and of bounded size. */
function nodeDetailsOf(v: unknown): { nodeDetails?: NodeDetail[] } {
  if (!Array.isArray(v) || v.length > 10_000) return {};
  const ok = v.every(
    (n) =>
      typeof n?.name === 'string' &&
      Buffer.byteLength(n.name) <= MAX_ID_BYTES &&
      Number.isInteger(n.cores) &&
      Number.isInteger(n.gpus),
  );
  return ok ? { nodeDetails: v.map((n) => ({ name: n.name, cores: n.cores, gpus: n.gpus })) } : {};
}

/** The launch methods the agent chose (task, MPI), kept when they are short strings. */
function launchMethodsOf(v: unknown): { launchMethods?: { task: string; mpi?: string } } {
  const m = v as { task?: unknown; mpi?: unknown } | undefined;
  if (typeof m?.task !== 'string' || m.task.length > 32) return {};
  return {
    launchMethods: {
      task: m.task,
      ...(typeof m.mpi === 'string' && m.mpi.length <= 32 ? { mpi: m.mpi } : {}),
    },
  };
}

/** A unit record as a pull hands it to the agent (as it travelled in the queue, and whether it is armed). */
function queued(u: UnitRecord): QueuedUnit & { armed?: true } {
  return {
    uid: u.uid,
    ...(u.name ? { name: u.name } : {}),
    description: u.description,
    ...(u.armed ? { armed: true } : {}),
  };
}

/**
 * Deletes the queue messages an agent acks (`acks`: receipts a pull of it answered with `ackLater`), beside
 * the route's own work. Best effort: a message not deleted comes back to a pull after its visibility
 * timeout, whose claims of its units are refused (they are claimed already), and is acked again then.
 * @throws BadParameter (at once, before any work) when `acks` is not a list of receipts
 */
function ackReceived(
  pilot: { sessionId: string; uid: string },
  body: Record<string, unknown>,
): Promise<void> {
  const acks = parseAcks(body.acks);
  if (acks.length === 0) return Promise.resolve();
  return deleteReceived(pilot.sessionId, pilot.uid, acks).catch((err: unknown) =>
    logger.warn('acked messages not deleted', { pilotId: pilot.uid, acks: acks.length, error: String(err) }),
  );
}

/** Applies an agent's state reports in rounds (core order per unit); how many were applied and refused. */
async function applyReports(
  pilot: { sessionId: string; uid: string },
  reports: ReturnType<typeof parseReports>,
): Promise<{ applied: number; refused: number }> {
  let applied = 0;
  let refused = 0;
  for (const round of planRounds(reports, pilot.uid)) {
    const outs = await store().transitionUnits(pilot.sessionId, round);
    for (const o of outs) o.ok ? applied++ : refused++;
  }
  return { applied, refused };
}

export const handler = httpHandler({
  'POST /agent/transfers': async (req) => agentTransfer(await authAgent(req.headers), req.body),

  'POST /agent/activate': async (req) => {
    const pilot = await authAgent(req.headers);
    const d = req.body.resourceDetail as Record<string, unknown> | undefined;
    const nodes = Array.isArray(d?.nodes)
      ? (d.nodes as unknown[]).filter((n): n is string => typeof n === 'string')
      : [];
    const resourceDetail = {
      nodes,
      coresPerNode: Number(d?.coresPerNode) || 0,
      ...(typeof d?.cores === 'number' ? { cores: d.cores } : {}),
      ...(typeof d?.gpus === 'number' ? { gpus: d.gpus } : {}),
      ...(typeof d?.lrms === 'string' ? { lrms: d.lrms } : {}),
      ...nodeDetailsOf(d?.nodeDetails),
      ...launchMethodsOf(d?.launchMethods),
    };
    const out = await store().transitionPilot(pilot.sessionId, pilot.uid, PilotState.ACTIVE, {
      resourceDetail,
      appendLog: [
        `agent active on ${nodes.join(',') || '?'} (${resourceDetail.lrms ?? '?'}), ${resourceDetail.cores ?? '?'} cores`,
      ],
    });
    if (!out.ok && (!out.current || isFinal(pilotModel, out.current.state))) throw out.error;
    // If the state machine already waits for activation, release it; else its await function will see ACTIVE.
    await succeedToken((out.ok ? out.record : out.current)?.taskTokens.activate, { active: true });
    return { heartbeatIntervalSeconds: Math.max(1, Math.floor(heartbeatSeconds() / 4)) };
  },

  'POST /agent/pull': async (req) => {
    const pilot = await authAgent(req.headers, true);
    if (pilot.state !== PilotState.ACTIVE)
      throw new IncorrectState(`pilot ${pilot.uid} is ${pilot.state}, not Active`);
    const acked = ackReceived(pilot, req.body);
    // The agent acks this pull's messages with its next request: their delete leaves the path from the
    // claims to the spawns (an older agent, which does not say so, has them deleted here as before).
    const ackLater = req.body.ackLater === true;
    const wait = Math.max(0, Math.min(10, Number(req.body.waitSeconds ?? 0) || 0));
    // Take about as many messages as the agent asked units for: a claim is one write per unit, and the
    // agent starts nothing until the whole pull returns, so a small ask must not claim ten full messages.
    const max = Math.max(1, Math.floor(Number(req.body.max ?? 0) || UNITS_PER_MESSAGE_GUESS * 10));
    const pullId =
      typeof req.body.pullId === 'string' && req.body.pullId.length <= 64 ? req.body.pullId : undefined;
    // Units the agent will start at once or hold at the head of its queue: armed by their claim, so that
    // no write-ahead round trip stands between the claim and the spawn (agent/arm-ahead.ts).
    const toArm = parseArmCount(req.body.arm, max);
    // The units beyond those that need a write-ahead are handed over held, not claimed: the agent claims
    // each in the write that arms or starts it (one write where a claim and an arm took two).
    const hold = parseHold(req.body.hold);
    const seen = commandsSeen(req.body);
    // Only a retry can repeat a pull whose answer was lost: a first attempt skips the read.
    const first = req.headers[ATTEMPT_HEADER] === '1';
    const last = pullId && !first ? await store().lastPull(pilot.sessionId, pilot.uid) : undefined;
    if (pullId && last?.id === pullId) {
      // The agent retries a pull whose answer it never got: the same units, those still claimed under this
      // pull's lease and not started (a claim is final in DynamoDB and their messages are gone, so nothing
      // but the lease's expiry would bring them back).
      const { lease, uids } = last;
      const again = await store().getUnits(pilot.sessionId, uids);
      await acked;
      // And those it handed over held that are still waiting for this pilot, held again.
      return {
        units: again.flatMap((u) => {
          const claimed = u.state === claimState(u.description) && u.pilot === pilot.uid && u.lease === lease;
          const stillHeld =
            hold &&
            u.state === UnitState.PENDING_EXECUTION &&
            u.pilot === pilot.uid &&
            armable(u.description);
          return claimed || stillHeld
            ? [{ ...queued(u), ...(lease ? { lease } : {}), ...(stillHeld ? { held: true as const } : {}) }]
            : [];
        }),
        commands: commandsFor(pilot, seen),
      };
    }
    // Late binding: units of the pilot's backfilling managers that fit the room the agent offers, claimed
    // first (they wait UNSCHEDULED in the managers' queues, functions/lib/backfill.ts). While units wait
    // there the pull does not long-poll: the agent asks again as soon as a unit of its ends.
    const free = parseFreeRoom(req.body.free);
    const lease = randomUUID();
    const leaseUntil = Date.now() + leaseSeconds() * 1000;
    const fromQueues: QueueClaim = pilot.backfill?.length
      ? await claimQueued(pilot, free, max, lease, leaseUntil)
      : { units: [], backlog: false };
    const {
      units: received,
      receipts,
      wake,
    } = await receiveUnits(
      pilot.sessionId,
      pilot.uid,
      fromQueues.units.length || fromQueues.backlog ? 0 : wait,
      Math.ceil(Math.max(1, max - fromQueues.units.length) / UNITS_PER_MESSAGE_GUESS),
    );
    // A wake-up means commands were written after this pilot was read, or units joined a queue: read the
    // pilot again to carry its commands (and its queues, if it was just added to a manager) now.
    const fresh = wake ? await store().getPilot(pilot.sessionId, pilot.uid) : pilot;
    const commands = commandsFor(fresh, seen);
    if (wake && fromQueues.units.length === 0 && fresh.backfill?.length) {
      const again = await claimQueued(fresh, free, max, lease, leaseUntil);
      fromQueues.units = again.units;
      fromQueues.backlog = again.backlog;
    }
    // A pull never claims more than it was asked for: messages carry ~100 units each, so the units beyond
    // `max` go back to the queue (sent before the received messages are deleted: a failure in between
    // leaves them to SQS redelivery, never lost).
    const room = Math.max(0, max - fromQueues.units.length);
    const units = received.slice(0, room);
    await sendUnits(pilot.sessionId, pilot.uid, received.slice(room));
    // The claim is authoritative: PENDING_EXECUTION → SCHEDULING (PENDING_INPUT_STAGING → STAGING_INPUT for a
    // unit the agent stages first), only for units bound to this pilot, leased
    // to this pull until a deadline (unstarted by then, the reconciler returns them to the queue). A unit
    // cancelled, rescheduled or already claimed (SQS redelivery) is refused and not run.
    // The first `arm` of them that need a write-ahead are armed in the same write as their claim.
    const arm = firstArmable(
      units.map((u) => u.description),
      toArm,
    );
    // Held (`hold`): the other units that need a write-ahead, not claimed now. They are bound to this
    // pilot and their messages go with the acks, so no one else takes them; if the agent dies first the
    // sweep at the pilot's end reschedules them as any unclaimed unit of the pilot (never failed: no
    // agent could have started them without a write that claims them).
    const held = units.map((u, i) => hold && !arm[i] && armable(u.description));
    // The pull is remembered beside its claims, not after them: a retry of this very pull (its answer
    // lost) reads the units it names and keeps only those still claimed under its lease (or still held
    // for this pilot), so naming a unit whose claim failed is harmless (store/pulls.ts). One small write
    // per pull, beside the pilot item.
    const attempted = [...fromQueues.units, ...units].map((u) => u.uid);
    const remembered =
      pullId && attempted.length
        ? store().recordPull(pilot.sessionId, pilot.uid, { id: pullId, uids: attempted, lease })
        : undefined;
    const toClaim = units.flatMap((u, i) => (held[i] ? [] : [{ u, i }]));
    const claiming =
      toClaim.length === 0
        ? []
        : store().transitionUnits(
            pilot.sessionId,
            toClaim.map(({ u, i }) => ({
              uid: u.uid,
              target: claimState(u.description),
              patch: { lease, leaseUntil, ...(arm[i] ? { armed: true as const } : {}) },
              expect: { pilot: pilot.uid },
              // Read first, not presumed queued (store/units.ts `presume`): units cancelled while
              // queued keep their messages, and a claim that presumed them would fail a write (billed as
              // one) for each, where one read per hundred units finds them. Except the few it arms: they
              // start the moment the answer comes, so their claims skip the read's round trip (a unit
              // found otherwise is read then, one failed write more).
              ...(arm[i] ? { presume: UnitState.PENDING_EXECUTION } : {}),
            })),
          );
    // Held units are read, not presumed queued (one read per hundred units, beside the claims): units
    // cancelled while queued keep their messages, and each handed over held would cost its agent a failed
    // claim and a read. Those not still waiting for this pilot are left out (their messages go all the same).
    const heldUids = units.flatMap((u, i) => (held[i] ? [u.uid] : []));
    const waiting = heldUids.length
      ? store()
          .findUnits(pilot.sessionId, heldUids)
          .then(
            (found) =>
              new Set(
                [...found.values()]
                  .filter((r) => r.state === UnitState.PENDING_EXECUTION && r.pilot === pilot.uid)
                  .map((r) => r.uid),
              ),
          )
      : new Set<string>();
    const [outs, stillWaiting] = await Promise.all([claiming, waiting, remembered]);
    const direct = new Set(outs.filter((o) => o.ok).map((o) => (o.ok ? o.record.uid : '')));
    type Answered = QueuedUnit & { armed?: true; held?: true };
    const claimed: Answered[] = [
      ...fromQueues.units,
      ...units.flatMap((u, i): Answered[] =>
        held[i]
          ? stillWaiting.has(u.uid)
            ? [{ ...u, held: true as const }]
            : []
          : direct.has(u.uid)
            ? [{ ...u, ...(arm[i] ? { armed: true as const } : {}) }]
            : [],
      ),
    ];
    // The messages go once their units are claimed (and the pull remembered): here, or by the agent's ack.
    if (!ackLater) await deleteReceived(pilot.sessionId, pilot.uid, receipts);
    await acked;
    return {
      units: claimed.map((u) => ({ ...u, lease })),
      ...(ackLater && receipts.length ? { receipts } : {}),
      commands,
      ...(fromQueues.backlog ? { backlog: true } : {}),
    };
  },

  'POST /agent/states': async (req) => {
    const pilot = await authAgent(req.headers, true);
    const reports = parseReports(req.body.updates);
    const [counts] = await Promise.all([applyReports(pilot, reports), ackReceived(pilot, req.body)]);
    return { ...counts, commands: commandsFor(pilot, commandsSeen(req.body)) };
  },

  'POST /agent/started': async (req) => {
    const pilot = await authAgent(req.headers, true);
    const starts = parseStarts(req.body.starts);
    // Reports may ride along (the ends of the units whose cores these starts take): one request instead
    // of two. Starts and reports never concern the same unit (a unit reports only after its start).
    const reports = req.body.updates === undefined ? [] : parseReports(req.body.updates);
    // Arms of the units next in line (agent/arm-ahead.ts), and disarms of those an ending agent never
    // started: one quiet conditional write each, beside the starts (never the same unit in one request).
    const asked = parseArms(req.body.arms, 'arms');
    const arms = [
      ...asked.filter((a) => !a.held).map((a) => ({ ...a, pilot: pilot.uid, armed: true })),
      ...parseArms(req.body.disarms, 'disarms').map((a) => ({ ...a, pilot: pilot.uid, armed: false })),
    ];
    // Arms of held units are their claims (the pull's `hold`): armed and leased in the claim's write.
    const heldArms = asked.filter((a) => a.held);
    // One guarded write per unit, all in one request; the agent spawns only the uids answered.
    const [outs, counts, armOuts, heldOuts] = await Promise.all([
      starts.length ? store().transitionUnits(pilot.sessionId, planStarts(starts, pilot.uid)) : [],
      applyReports(pilot, reports),
      arms.length ? store().armUnits(pilot.sessionId, arms) : [],
      heldArms.length
        ? store().transitionUnits(
            pilot.sessionId,
            planHeldArms(heldArms, pilot.uid, Date.now() + leaseSeconds() * 1000),
          )
        : [],
      ackReceived(pilot, req.body),
    ]);
    const answered = (armed: boolean) => [
      ...arms.flatMap((a, i) => (a.armed === armed && armOuts[i]?.ok ? [a.uid] : [])),
      ...(armed ? heldArms.filter((a, i) => heldArmTook(a, heldOuts[i], pilot.uid)).map((a) => a.uid) : []),
    ];
    return {
      started: startedOf(starts, outs, pilot.uid),
      ...(asked.length ? { armed: answered(true) } : {}),
      ...(arms.some((a) => !a.armed) ? { disarmed: answered(false) } : {}),
      ...counts,
      commands: commandsFor(pilot, commandsSeen(req.body)),
    };
  },

  'POST /agent/heartbeat': async (req) => {
    const pilot = await authAgent(req.headers);
    const acked = ackReceived(pilot, req.body);
    // Recorded for the job checks between turns of the Active wait (each turn restarts Step Functions'
    // heartbeat clock): one small write per heartbeat, every heartbeatSeconds/4.
    await store().patchPilot(pilot.sessionId, pilot.uid, { lastHeartbeat: new Date().toISOString() });
    await heartbeatToken(pilot.taskTokens.active);
    // The agent's count of the commands it took selects the new ones; those it took are trimmed off the
    // record here (a guarded write that skips itself if a command was appended meanwhile).
    const seen = commandsSeen(req.body);
    const trim = trimmable(pilot, seen);
    if (trim > 0) await store().trimCommands(pilot.sessionId, pilot, trim);
    await acked;
    return commandsFor(pilot, seen);
  },

  'POST /agent/commands': async (req) => {
    // For an agent that is not pulling (its buffer of claimed units is full): the commands, no wait.
    const pilot = await authAgent(req.headers);
    await ackReceived(pilot, req.body);
    return commandsFor(pilot, commandsSeen(req.body));
  },

  'POST /agent/done': async (req) => {
    let pilot = await authAgent(req.headers);
    // Its last acks: the queue goes with the pilot's end anyway, but not before the end is recorded.
    await ackReceived(pilot, req.body);
    const state = req.body.state === PilotState.DONE ? PilotState.DONE : PilotState.FAILED;
    const reason = typeof req.body.reason === 'string' ? req.body.reason.slice(0, 2000) : 'agent ended';
    // The Active state registers its token right after activation; give a very short-lived agent a moment.
    for (let i = 0; i < 50 && !pilot.taskTokens.active; i++) {
      await new Promise((r) => setTimeout(r, 100));
      pilot = await store().getPilot(pilot.sessionId, pilot.uid);
    }
    // Written first, then the token released: if a job check sits between two turns of the Active wait
    // (the token is stale), the next turn's registration finds the end here and releases itself.
    const out = await store().patchPilot(pilot.sessionId, pilot.uid, {
      appendLog: [`agent ended: ${state} (${reason})`],
      agentEnd: { state, reason },
    });
    const tokens = out.ok ? out.record.taskTokens : pilot.taskTokens;
    const released = await succeedToken(tokens.active, { state, reason });
    return { ok: released };
  },
});
