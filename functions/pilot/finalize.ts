/**
 * Step Functions tasks `Finalize` and `Failed`: end the pilot, whatever ended it.
 *
 * 1. Decide the final state and a reason a user can act on: the agent's own word (DONE at walltime,
 *    FAILED with its error), a cancel (CANCELED), a missed heartbeat or an agent that never activated
 *    (FAILED, with the batch system's view of the job and the agent's last output lines).
 * 2. Stop the batch job (no-op if it already ended) and record the final state.
 * 3. Sweep the pilot's unfinished units so none can hang (RP's backfilling rule): not yet executing →
 *    UNSCHEDULED, then rebound to another live pilot of their unit manager, or, with none left,
 *    FAILED (CANCELED if the pilot was cancelled); executing → restartable ? the same : FAILED
 *    (CANCELED if the pilot was cancelled). A backfilling manager's units go back into its queue
 *    instead, UNSCHEDULED, for its other pilots (or a pilot added later) to claim.
 * 4. Delete the pilot's queue, and retire the pilot from the live pilots (store LIVE_PILOTS): its end is
 *    fully processed. Until then the reconciler (reconcile.ts) runs this same handler for a pilot whose
 *    execution ended without getting here.
 */
import { groupBy } from '../../core/group.ts';
import { allItems } from '../../core/pages.ts';
import {
  causeText,
  decidePilotEnd,
  lostUnit,
  type PilotEndInput,
  RECONCILED_ERROR,
} from '../../core/pilot-end.ts';
import { bindsLate, bindUnits, type SchedulerName } from '../../core/schedulers.ts';
import {
  isFinal,
  PilotState,
  pendingState,
  pilotModel,
  sweepTarget,
  UnitState,
  unitModel,
} from '../../core/states.ts';
import type { PilotRecord, TransitionOutcome, UnitRecord } from '../../store/index.ts';
import { cancelQueued, wakeQueue } from '../lib/backfill.ts';
import { logger } from '../lib/log.ts';
import { withMetrics } from '../lib/metrics.ts';
import { executionTransitions, heartbeatSeconds } from '../lib/pilots.ts';
import { deletePilotQueue, sendUnits } from '../lib/queues.ts';
import { store } from '../lib/store.ts';
import { count } from '../lib/usage.ts';
import { withdrawLaunch } from './endpoint-launcher.ts';
import type { JobStatus } from './launcher/types.ts';
import { accessOf, launchedJob, launcherOf } from './request.ts';

/** What the state machine (or the reconciler) passes: the pilot, and the agent's outcome or the error caught. */
export interface FinalizeEvent extends PilotEndInput {
  sid: string;
  pid: string;
}

/** Bounds a cleanup step: finalize must end even if a resource does not answer. */
async function bounded<T>(what: string, ms: number, p: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms))),
    ]);
  } catch (err) {
    logger.warn(`${what} failed`, { error: err as Error });
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

function allPilotUnits(sid: string, pid: string): Promise<UnitRecord[]> {
  return allItems((next) => store().listPilotUnits(sid, pid, { next }));
}

/**
 * Late binding (backfilling): the pilot's unfinished units of a backfilling manager go back into that
 * manager's queue, UNSCHEDULED and unbound, in the same guarded write per unit; the manager's other
 * active pilots are woken to take them. With no pilot left they wait there (RP's backfiller keeps its
 * wait queue) until one is added or the session closes: a closed session's close, or this sweep when it
 * finds the session closed, cancels them. Returns how many went back.
 */
async function requeue(
  pilot: PilotRecord,
  units: readonly UnitRecord[],
  why: string,
): Promise<{ back: number; armed: UnitRecord[] }> {
  if (units.length === 0) return { back: 0, armed: [] };
  const s = store();
  const sid = pilot.sessionId;
  const outs = await s.rescheduleUnits(
    sid,
    units.map((u) => ({
      uid: u.uid,
      expect: { pilot: pilot.uid },
      queue: u.umgr,
      appendLog: [`${why}; back in ${u.umgr}'s queue`],
    })),
  );
  const back = outs.flatMap((o) => (o.ok ? [o.record] : []));
  const managers = [...new Set(back.map((u) => u.umgr))];
  // Read after the units are back: either the close route (which closes first, then cancels the queues)
  // sees them, or this read sees the session closed.
  const closed = (await s.getSession(sid)).state !== 'open';
  for (const umid of managers) {
    if (closed) await cancelQueued(sid, umid, 'cancelled: session closed');
    else await wakeQueue(sid, umid, pilot.uid);
  }
  return { back: back.length, armed: armedOf(outs) };
}

/** Armed and not yet known to have started: its agent may have spawned it without saying so. */
function armedUnstarted(u: UnitRecord): boolean {
  return u.armed === true && unitModel.order[u.state] < unitModel.order.Executing;
}

/** A lost unit's log line: an armed one that never said it started may or may not have run. */
function armedWhy(u: UnitRecord, why: string): string {
  return armedUnstarted(u)
    ? `${why}; it was armed to start there, so it may have started: not run again`
    : why;
}

/** Units a reschedule refused because their agent had armed them meanwhile (store/units.ts `unarmed`). */
function armedOf(outs: readonly TransitionOutcome<UnitRecord, UnitState>[]): UnitRecord[] {
  return outs.flatMap((o) =>
    !o.ok && o.current?.armed && !isFinal(unitModel, o.current.state) ? [o.current] : [],
  );
}

/**
 * Ends units of the ended pilot as lost (core/pilot-end.ts `lostUnit`), saying so of armed ones. An armed
 * unit the user cancelled meanwhile (the cancel went to its agent, which the sweep now speaks for: the
 * command is still on the pilot) ends CANCELED, as it would have had the agent taken it.
 */
async function endLost(
  pilot: PilotRecord,
  units: readonly UnitRecord[],
  lost: UnitState,
  reason: string,
): Promise<void> {
  if (units.length === 0) return;
  const cancelled = new Set(
    (pilot.commands ?? []).flatMap((c) => (c.type === 'cancel_units' ? (c.uids ?? []) : [])),
  );
  await store().transitionUnits(
    pilot.sessionId,
    units.map((u) => {
      const asked = cancelled.has(u.uid) && armedUnstarted(u);
      return {
        uid: u.uid,
        target: asked ? UnitState.CANCELED : lost,
        patch: {
          appendLog: [
            asked ? `cancelled; its agent was lost (${reason}) before it said so` : armedWhy(u, reason),
          ],
        },
        expect: { pilot: pilot.uid },
      };
    }),
  );
}

/** The sweep (step 3). Returns counts for the log. */
async function sweep(pilot: PilotRecord, state: PilotState, reason: string): Promise<Record<string, number>> {
  const s = store();
  const sid = pilot.sessionId;
  const units = (await allPilotUnits(sid, pilot.uid)).filter((u) => u.pilot === pilot.uid);
  const umgrs = new Map(
    await Promise.all(
      [...new Set(units.map((u) => u.umgr))].map(
        async (id) => [id, await s.getUnitManager(sid, id)] as const,
      ),
    ),
  );
  const toFail: UnitRecord[] = [];
  const toReschedule: UnitRecord[] = [];
  const toRequeue: UnitRecord[] = [];
  for (const u of units) {
    const t = sweepTarget(u.state, u.description.restartable ?? false, u.armed === true);
    if (t === UnitState.FAILED) toFail.push(u);
    else if (t === UnitState.UNSCHEDULED && bindsLate(umgrs.get(u.umgr)?.scheduler ?? '')) toRequeue.push(u);
    else if (t === UnitState.UNSCHEDULED) toReschedule.push(u);
  }
  // A unit killed because the user cancelled its pilot did not fail (RP 0.22 set them CANCELED); one the
  // walltime killed did ("pilot runtime reached"). This is also what the agent reports when it kills them,
  // so the outcome does not depend on who writes first.
  const { state: lost, reason: why } = lostUnit(pilot.uid, state, reason);
  await endLost(pilot, toFail, lost, why);
  const back = await s.rescheduleUnits(
    sid,
    toReschedule.map((u) => ({ uid: u.uid, expect: { pilot: pilot.uid } })),
  );
  const unscheduled = back.filter((o) => o.ok).map((o) => (o.ok ? o.record : (undefined as never)));
  const requeued = await requeue(pilot, toRequeue, why);
  // Armed by the agent after the read above (it was still running): those may have started too.
  await endLost(pilot, [...armedOf(back), ...requeued.armed], lost, why);
  let rebound = requeued.back;
  let ended = 0;
  // Rebind per unit manager to its other live pilots, or end the units: nothing waits for a pilot that will never come.
  const byUmgr = groupBy(unscheduled, (u) => u.umgr);
  for (const [umid, us] of byUmgr) {
    const umgr = await s.getUnitManager(sid, umid);
    const others = umgr.pilots.filter((p) => p !== pilot.uid);
    const live = others.length
      ? (await s.getPilots(sid, others)).filter((p) => !isFinal(pilotModel, p.state)).map((p) => p.uid)
      : [];
    if (live.length && umgr.scheduler !== 'direct_submission') {
      const binding = bindUnits(umgr.scheduler as SchedulerName, live, us.length);
      const outs = await s.transitionUnits(
        sid,
        us.map((u, i) => ({
          uid: u.uid,
          target: pendingState(u.description),
          patch: {
            pilot: binding.pilots[i] as string,
            appendLog: [`${why}; rescheduled to ${binding.pilots[i]}`],
          },
        })),
      );
      const moved = outs.filter((o) => o.ok).map((o) => (o.ok ? o.record : (undefined as never)));
      const perPilot = groupBy(moved, (u) => u.pilot as string);
      for (const [pid, list] of perPilot) {
        await sendUnits(
          sid,
          pid,
          list.map((u) => ({ uid: u.uid, ...(u.name ? { name: u.name } : {}), description: u.description })),
        );
      }
      rebound += moved.length;
    } else {
      const target = lost;
      await s.transitionUnits(
        sid,
        us.map((u) => ({ uid: u.uid, target, patch: { appendLog: [`${why}; no other pilot to run it`] } })),
      );
      ended += us.length;
    }
  }
  return { failed: toFail.length, rebound, ended };
}

async function run(event: FinalizeEvent): Promise<{ state: PilotState }> {
  const s = store();
  const pilot = await s.getPilot(event.sid, event.pid);
  // The reconciler finishing a pilot that is final already: keep its state (RP lets a CANCELED pilot
  // become FAILED, but this is not news about the pilot), just do what was left undone.
  if (event.error?.Error === RECONCILED_ERROR && isFinal(pilotModel, pilot.state)) {
    return finish(pilot, pilot.state, causeText(event.error.Cause));
  }
  const { state, reason } = decidePilotEnd(event, pilot.state, heartbeatSeconds());
  const job = launchedJob(pilot);
  const lines = [`pilot ends ${state}: ${reason}`];
  if (!job && (await accessOf(pilot)) === 'endpoint') {
    // Ended before its endpoint reported a job: take the launch back (or cancel what it launched meanwhile).
    const line = await bounded('launch withdrawal', 10_000, withdrawLaunch(pilot));
    if (line) lines.push(line);
  }
  if (job) {
    const { launcher, req } = await launcherOf(pilot);
    if (state === PilotState.FAILED) {
      const st = await bounded<JobStatus>('job status', 20_000, launcher.status(req, job));
      if (st) lines.push(`batch job ${job.jobId}: ${st.state}${st.detail ? ` (${st.detail})` : ''}`);
    }
    await bounded('job cancel', 30_000, launcher.cancel(req, job));
    if (state === PilotState.FAILED) {
      const tail = await bounded('log tail', 20_000, launcher.tail(req, job, 20));
      if (tail) lines.push(`last agent output:\n${tail}`);
    }
  }
  const out = await s.transitionPilot(event.sid, event.pid, state, { appendLog: lines });
  const final = out.ok ? out.record.state : (out.current?.state ?? state);
  return finish(out.ok ? out.record : pilot, final, reason);
}

/** Steps 3 and 4 for a pilot whose final state is recorded. */
async function finish(pilot: PilotRecord, final: PilotState, reason: string): Promise<{ state: PilotState }> {
  const s = store();
  const event = { sid: pilot.sessionId, pid: pilot.uid };
  const counts = await sweep(pilot, final, reason);
  if (counts.failed || counts.rebound || counts.ended) {
    await s.patchPilot(event.sid, event.pid, {
      appendLog: [
        `units swept: ${counts.failed} lost while executing, ${counts.rebound} rescheduled, ${counts.ended} ended without a pilot`,
      ],
    });
  }
  await bounded('queue delete', 10_000, deletePilotQueue(event.sid, event.pid));
  // The execution's transitions so far are the session's Step Functions usage (the few after this step
  // are not counted; a Finalize that runs twice counts them twice).
  const transitions = await bounded('execution history', 10_000, executionTransitions(event.sid, event.pid));
  if (transitions) count({ sfnTransitions: transitions });
  // Last: a failure before this line leaves the pilot live, and the reconciler finishes the job.
  await s.patchPilot(event.sid, event.pid, { retire: true });
  logger.info('pilot finalized', { sid: event.sid, pid: event.pid, state: final, reason, ...counts });
  return { state: final };
}

/** The Lambda entry: {@link run}, with its log context and metrics. */
export const handler = withMetrics(run, { pilotEnd: true });
