/**
 * The agent routes: activation, unit pulls (claims), batched state reports, heartbeats (which carry
 * commands back) and the agent's end. Authenticated by the pilot token; an agent can touch only its
 * own pilot and the units bound to it.
 */

import { BadParameter, IncorrectState } from '../../core/errors.ts';
import { groupBy } from '../../core/group.ts';
import { clipTail } from '../../core/output.ts';
import { isFinal, PilotState, pilotModel, UnitState } from '../../core/states.ts';
import type { NodeDetail, UnitReport } from '../../core/wire.ts';
import type { PilotRecord, UnitPatch, UnitTransition } from '../../store/index.ts';
import { authAgent } from '../lib/auth.ts';
import { httpHandler, MAX_ID_BYTES } from '../lib/http.ts';
import { heartbeatSeconds, heartbeatToken, succeedToken } from '../lib/pilots.ts';
import { deleteReceived, receiveUnits } from '../lib/queues.ts';
import { store } from '../lib/store.ts';

const REPORTABLE = new Set<string>([
  UnitState.EXECUTING,
  UnitState.DONE,
  UnitState.FAILED,
  UnitState.CANCELED,
]);

function live(p: PilotRecord): PilotRecord {
  if (isFinal(pilotModel, p.state))
    throw new IncorrectState(`pilot ${p.uid} is ${p.state}: the agent must stop`, { obj: p.uid });
  return p;
}

/** A report as it arrives: the agent's shape, but not yet checked. */
type Report = Omit<UnitReport, 'state' | 'time'> & { state: string; time?: string };

/** Reports per call: the agent sends at most 500; far more could not be applied within the function's timeout. */
const MAX_REPORTS = 5_000;

/** Optional report fields and the type each must have: anything else would reach the unit record as is. */
const FIELD_TYPES: Record<string, (v: unknown) => boolean> = {
  time: (v) => typeof v === 'string',
  exitCode: (v) => Number.isInteger(v),
  stdout: (v) => typeof v === 'string',
  stderr: (v) => typeof v === 'string',
  sandbox: (v) => typeof v === 'string',
  reason: (v) => typeof v === 'string',
  execLocations: (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'),
};

function parseReports(v: unknown): Report[] {
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

function patchOf(r: Report): UnitPatch {
  // The agent sends the tails already cut (64 KiB, marked); an oversized report is cut the same way.
  const clip = (s: string | undefined) => (s === undefined ? undefined : clipTail(s));
  const p: UnitPatch = {};
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
      });
    });
  }
  return rounds;
}

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

export const handler = httpHandler({
  'POST /agent/activate': async (req) => {
    const pilot = live(await authAgent(req.headers));
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
    const pilot = live(await authAgent(req.headers));
    if (pilot.state !== PilotState.ACTIVE)
      throw new IncorrectState(`pilot ${pilot.uid} is ${pilot.state}, not Active`);
    const wait = Math.max(0, Math.min(10, Number(req.body.waitSeconds ?? 0) || 0));
    // Take about as many messages as the agent asked units for: a claim is one write per unit, and the
    // agent starts nothing until the whole pull returns, so a small ask must not claim ten full messages.
    const max = Math.max(1, Number(req.body.max ?? 0) || UNITS_PER_MESSAGE_GUESS * 10);
    const { units, receipts } = await receiveUnits(
      pilot.sessionId,
      pilot.uid,
      wait,
      Math.ceil(max / UNITS_PER_MESSAGE_GUESS),
    );
    if (units.length === 0) return { units: [] };
    // The claim is authoritative: PENDING_EXECUTION → SCHEDULING, only for units bound to this pilot.
    // A unit cancelled, rescheduled or already claimed (SQS redelivery) is refused and not run.
    const outs = await store().transitionUnits(
      pilot.sessionId,
      units.map((u) => ({ uid: u.uid, target: UnitState.SCHEDULING, expect: { pilot: pilot.uid } })),
    );
    await deleteReceived(pilot.sessionId, pilot.uid, receipts);
    const claimed = new Set(outs.filter((o) => o.ok).map((o) => (o.ok ? o.record.uid : '')));
    return { units: units.filter((u) => claimed.has(u.uid)) };
  },

  'POST /agent/states': async (req) => {
    const pilot = await authAgent(req.headers);
    const reports = parseReports(req.body.updates);
    let applied = 0;
    let refused = 0;
    for (const round of planRounds(reports, pilot.uid)) {
      const outs = await store().transitionUnits(pilot.sessionId, round);
      for (const o of outs) o.ok ? applied++ : refused++;
    }
    return { applied, refused };
  },

  'POST /agent/heartbeat': async (req) => {
    const pilot = live(await authAgent(req.headers));
    await heartbeatToken(pilot.taskTokens.active);
    // Commands stay on the record (the agent ignores repeats): clearing them could lose one appended meanwhile.
    const cancelUnits = pilot.commands.filter((c) => c.type === 'cancel_units').flatMap((c) => c.uids ?? []);
    return { cancelUnits, cancelPilot: pilot.commands.some((c) => c.type === 'cancel_pilot') };
  },

  'POST /agent/done': async (req) => {
    let pilot = await authAgent(req.headers);
    const state = req.body.state === PilotState.DONE ? PilotState.DONE : PilotState.FAILED;
    const reason = typeof req.body.reason === 'string' ? req.body.reason.slice(0, 2000) : 'agent ended';
    if (isFinal(pilotModel, pilot.state)) return { ok: true };
    // The Active state registers its token right after activation; give a very short-lived agent a moment.
    for (let i = 0; i < 50 && !pilot.taskTokens.active; i++) {
      await new Promise((r) => setTimeout(r, 100));
      pilot = await store().getPilot(pilot.sessionId, pilot.uid);
    }
    await store().patchPilot(pilot.sessionId, pilot.uid, {
      appendLog: [`agent ended: ${state} (${reason})`],
    });
    const released = await succeedToken(pilot.taskTokens.active, { state, reason });
    return { ok: released };
  },
});
