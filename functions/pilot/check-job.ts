/**
 * Step Functions tasks `CheckJob` and `CheckActive`, run each time a turn of the `WaitActive` or `Active`
 * wait times out: RP's client-side job liveness check, kept up while the pilot is ACTIVE. It asks the
 * batch system about the pilot's job and applies the pure rules of core/job-checks.ts: a job that ended
 * fails the pilot now (with the batch system's words; the pilot's log then also shows the agent's last
 * output), a queued job may wait up to its queue limit, the activation deadline counts from the job's
 * start, a silent agent or an overrun walltime fails an ACTIVE pilot. Otherwise it returns how long the
 * next turn waits (backing off), and a memo the state machine hands to the next check.
 */

import { launchWaitDetail } from '../../core/endpoints.ts';
import { DEFAULT_MAX_JOB_CHECK_SECONDS, decideCheck, type JobView } from '../../core/job-checks.ts';
import { maxQueueSeconds } from '../../core/resources.ts';
import { PilotState } from '../../core/states.ts';
import { logger } from '../lib/log.ts';
import { withMetrics } from '../lib/metrics.ts';
import { CANCELED_ERROR, cancelRequested } from '../lib/pilots.ts';
import { store } from '../lib/store.ts';
import { endpointLastSeen } from './endpoint-launcher.ts';
import { named } from './launch.ts';
import { launchedJob, launcherOf, resourceOf } from './request.ts';

/** What the check carries from one turn to the next (in the execution's state, not the table). */
export interface CheckMemo {
  /** Epoch ms of the first check that saw the job running. */
  runningSince?: number;
}

/** The state machine's payload: the deployment's defaults from the execution input, and the memo. */
export interface CheckJobEvent {
  sid: string;
  pid: string;
  phase?: 'activate' | 'active';
  activateTimeoutSeconds: number;
  jobCheckSeconds?: number;
  heartbeatSeconds?: number;
  activeTimeoutSeconds?: number;
  memo?: CheckMemo;
}

const ms = (iso: string | undefined): number | undefined => (iso ? Date.parse(iso) : undefined);

async function run(event: CheckJobEvent): Promise<{ waitSeconds: number; memo: CheckMemo }> {
  const pilot = await store().getPilot(event.sid, event.pid);
  const memo: CheckMemo = event.memo ?? {};
  const first = event.jobCheckSeconds ?? 30;
  if (cancelRequested(pilot)) throw named(CANCELED_ERROR, 'cancelled while waiting for the agent');
  // The agent ended between two turns, or activated since the last turn timed out: the next turn
  // registers its token, finds that on the pilot and moves on at once.
  if (pilot.agentEnd || (event.phase !== 'active' && pilot.state === PilotState.ACTIVE))
    return { waitSeconds: first, memo };
  const rc = await resourceOf(pilot);
  const d = pilot.description;
  const job = launchedJob(pilot);
  let view: JobView = { state: 'unknown' };
  if (!job && (d.accessSchema ?? rc.defaultSchema) === 'endpoint') {
    // The launch request waits for the user's endpoint: queued, so the queue limit bounds the wait (an
    // endpoint that is down delays the pilot, it does not start its activation deadline).
    const launch = await store().getEndpointRequest(event.sid, event.pid, 'launch');
    if (launch?.answer && !launch.answer.ok)
      throw named(
        'Sortie.LaunchFailed',
        `launch on ${d.resource} failed on its endpoint: ${launch.answer.error}`,
      );
    view = {
      state: 'queued',
      detail: launchWaitDetail(d.resource, await endpointLastSeen(event.sid, d.resource)),
    };
  } else if (job) {
    const { launcher, req } = await launcherOf(pilot);
    const st = await launcher.status(req, job);
    view = { state: st.state, ...(st.detail ? { detail: st.detail } : {}) };
  }
  const active = pilot.state === PilotState.ACTIVE;
  const since = (state: PilotState) => ms(pilot.stateHistory.find((h) => h.state === state)?.time);
  const decision = decideCheck({
    now: Date.now(),
    active,
    ...(job ? { jobId: job.jobId } : {}),
    job: view,
    queuedSince: since(PilotState.PENDING_ACTIVE) ?? ms(pilot.submitted) ?? Date.now(),
    ...(memo.runningSince !== undefined ? { runningSince: memo.runningSince } : {}),
    ...(active ? { activeSince: since(PilotState.ACTIVE) ?? Date.now() } : {}),
    ...(pilot.lastHeartbeat ? { lastHeartbeat: Date.parse(pilot.lastHeartbeat) } : {}),
    queueTimeout: Math.min(d.queueTimeout ?? Number.POSITIVE_INFINITY, maxQueueSeconds(rc)),
    activateTimeout: d.activateTimeout ?? rc.activateTimeout ?? event.activateTimeoutSeconds,
    heartbeat: event.heartbeatSeconds ?? 60,
    activeTimeout: event.activeTimeoutSeconds ?? d.runtime * 60 + 300,
    policy: {
      firstSeconds: rc.jobCheckSeconds ?? first,
      maxSeconds: rc.maxJobCheckSeconds ?? DEFAULT_MAX_JOB_CHECK_SECONDS,
    },
  });
  if ('fail' in decision) {
    // The batch system's answer took a round trip: a cancel, or the agent's own end, may have been recorded
    // meanwhile, and the job ended because of it. They decide the pilot's end, not the job's disappearance.
    if (view.state === 'finished') {
      const now = await store().getPilot(event.sid, event.pid);
      if (cancelRequested(now)) throw named(CANCELED_ERROR, 'cancelled while its job ended');
      if (now.agentEnd) return { waitSeconds: 1, memo };
    }
    throw named(decision.fail.error, decision.fail.reason);
  }
  const next: CheckMemo = decision.runningSince !== undefined ? { runningSince: decision.runningSince } : {};
  if (next.runningSince !== undefined && memo.runningSince === undefined)
    await store().patchPilot(event.sid, event.pid, {
      appendLog: [
        `batch job ${job?.jobId ?? '?'} is running (${view.detail ?? view.state}); the agent's activation deadline starts now`,
      ],
    });
  logger.debug('job check', { sid: event.sid, pid: event.pid, job: view, waitSeconds: decision.wait });
  return { waitSeconds: decision.wait, memo: next };
}

/** The Lambda entry: {@link run}, with its log context and metrics. */
export const handler = withMetrics(run);
