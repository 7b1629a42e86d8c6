/**
 * Step Functions tasks `WaitActive` and `Active` (lambda:invoke.waitForTaskToken): store the task token
 * on the pilot, where the agent routes and cancel find it. Registration and the events it waits for
 * can race; each side writes first and then looks, so whichever comes second acts:
 * - activate: if the agent is already ACTIVE, release the token now;
 * - active (one turn of the Active wait, between job checks): if the agent already ended, release the
 *   token with its end;
 * - either phase: if a cancel is queued, fail the task as cancelled.
 */
import { PilotState } from '../../core/states.ts';
import { withMetrics } from '../lib/metrics.ts';
import { CANCELED_ERROR, cancelRequested, failToken, succeedToken } from '../lib/pilots.ts';
import { store } from '../lib/store.ts';
import { named } from './launch.ts';

async function run(event: {
  sid: string;
  pid: string;
  phase: 'activate' | 'active';
  taskToken: string;
}): Promise<{ registered: boolean }> {
  const out = await store().patchPilot(event.sid, event.pid, {
    taskTokens: { [event.phase]: event.taskToken },
  });
  if (!out.ok) throw named('Sortie.PilotGone', out.error.message);
  const pilot = out.record;
  if (cancelRequested(pilot)) {
    await failToken(event.taskToken, CANCELED_ERROR, 'cancelled by user');
    return { registered: true };
  }
  if (event.phase === 'activate' && pilot.state === PilotState.ACTIVE)
    await succeedToken(event.taskToken, { active: true });
  // The agent ended while a job check ran between two turns of the Active wait: its end is recorded.
  if (event.phase === 'active' && pilot.agentEnd) await succeedToken(event.taskToken, pilot.agentEnd);
  return { registered: true };
}

/** The Lambda entry: {@link run}, with its log context and metrics. */
export const handler = withMetrics(run);
