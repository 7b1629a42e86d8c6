/**
 * Step Functions task `CheckJob`, run each time `WaitActive` times out (every jobCheckSeconds) until the
 * agent activates: RP's client-side job liveness check. A batch job that ended before its agent called in
 * (rejected, crashed in bootstrap, no `node` on the node) fails the pilot now, not at the activation
 * deadline, and the pilot's log then shows the batch system's words and the agent's last output.
 */
import { PilotState } from '../../core/states.ts';
import { withMetrics } from '../lib/metrics.ts';
import { CANCELED_ERROR, cancelRequested } from '../lib/pilots.ts';
import { store } from '../lib/store.ts';
import { named } from './launch.ts';
import { launchedJob, launcherOf } from './request.ts';

async function run(event: {
  sid: string;
  pid: string;
  activateTimeoutSeconds: number;
}): Promise<{ state: string }> {
  const pilot = await store().getPilot(event.sid, event.pid);
  if (cancelRequested(pilot)) throw named(CANCELED_ERROR, 'cancelled while waiting for the agent');
  // Activated since the last wait timed out: the next WaitActive sees ACTIVE and moves on at once.
  if (pilot.state === PilotState.ACTIVE) return { state: pilot.state };
  const since =
    pilot.stateHistory.find((h) => h.state === PilotState.PENDING_ACTIVE)?.time ?? pilot.submitted;
  const waited = since ? (Date.now() - Date.parse(since)) / 1000 : 0;
  const job = launchedJob(pilot);
  let status = 'unknown';
  if (job) {
    const { launcher, req } = await launcherOf(pilot);
    const st = await launcher.status(req, job);
    status = `${st.state}${st.detail ? ` (${st.detail})` : ''}`;
    if (st.state === 'finished') {
      throw named(
        'Sortie.JobEnded',
        `batch job ${job.jobId} ended before its agent became active: ${st.detail ?? 'no detail'}`,
      );
    }
  }
  if (waited > event.activateTimeoutSeconds) {
    throw named(
      'Sortie.ActivationTimeout',
      `agent did not become active within ${event.activateTimeoutSeconds} s; batch job ${job?.jobId ?? '?'}: ${status}`,
    );
  }
  return { state: pilot.state };
}

/** The Lambda entry: {@link run}, with its log context and metrics. */
export const handler = withMetrics(run);
