/**
 * Step Functions task `Launch`: PENDING_LAUNCH → LAUNCHING → (job submitted) PENDING_ACTIVE.
 * Mints the pilot secret (only its hash is stored), hands the agent its config and starts it through
 * the resource's launcher. Errors are named for the state machine: `Sortie.Transient` is retried,
 * anything else fails the pilot with the message as its reason.
 */
import { PilotState } from '../../core/states.ts';
import { ENV } from '../../stacks/manifest.ts';
import { env } from '../lib/aws.ts';
import { withMetrics } from '../lib/metrics.ts';
import { CANCELED_ERROR, cancelRequested } from '../lib/pilots.ts';
import { hashSecret, pilotSecret } from '../lib/secrets.ts';
import { store } from '../lib/store.ts';
import { launcherOf, resourceOf } from './request.ts';

/** An error whose name the state machine's Retry/Catch matches. */
export function named(name: string, message: string, cause?: unknown): Error {
  const err = new Error(message, cause === undefined ? undefined : { cause });
  err.name = name;
  return err;
}

/** Node error codes worth a retry (the network blinked). */
const TRANSIENT = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE']);

async function run(event: { sid: string; pid: string }): Promise<{ jobId: string; sandbox: string }> {
  const s = store();
  const pilot = await s.getPilot(event.sid, event.pid);
  if (cancelRequested(pilot)) throw named(CANCELED_ERROR, 'cancelled before launch');
  // The same secret on every attempt (see pilotSecret): a retry may find and keep the first attempt's job.
  const secret = pilotSecret(event.sid, event.pid);
  // `retry`: after a transient error the state machine runs this task again on a pilot that is still
  // LAUNCHING from the first attempt; that is the same step again, not a failure.
  const moved = await s.transitionPilot(
    event.sid,
    event.pid,
    PilotState.LAUNCHING,
    { secretHash: hashSecret(secret), appendLog: [`launching on ${pilot.description.resource}`] },
    { retry: true },
  );
  if (!moved.ok) {
    // A retry of this task after a launch that got as far as submitting: never launch twice.
    if (moved.current?.jobId && moved.current.sandbox)
      return { jobId: moved.current.jobId, sandbox: moved.current.sandbox };
    throw named('Sortie.LaunchFailed', moved.error.message);
  }
  let job: { jobId: string; sandbox: string };
  try {
    const rc = await resourceOf(pilot);
    const { launcher, req } = await launcherOf(pilot, {
      apiUrl: env(ENV.apiUrl),
      sessionId: event.sid,
      pilotId: event.pid,
      token: `${event.sid}~${event.pid}~${secret}`,
      cores: pilot.description.cores,
      ...(pilot.description.gpus !== undefined ? { gpus: pilot.description.gpus } : {}),
      runtimeSeconds: pilot.description.runtime * 60,
      resource: pilot.description.resource,
      // The agent cannot see user-added resource configs: it gets what it needs to place and launch units.
      launchMethods: rc.launchMethods,
      gpusPerNode: rc.gpusPerNode,
      gpuEnv: rc.gpuEnv,
      oversubscribe: rc.oversubscribe,
      spawner: rc.agentSpawner,
      cleanup: pilot.description.cleanup === true,
    });
    job = await launcher.launch(req);
  } catch (err) {
    const e = err as Error & { permanent?: boolean; code?: string };
    await s.patchPilot(event.sid, event.pid, { appendLog: [`launch failed: ${e.message}`] });
    // SSH errors say themselves whether a retry can help; a dropped connection or a slow command can.
    const transient = e.permanent === false || (e.permanent === undefined && TRANSIENT.has(e.code ?? ''));
    if (transient) throw named('Sortie.Transient', e.message, e);
    throw named('Sortie.LaunchFailed', `launch on ${pilot.description.resource} failed: ${e.message}`, e);
  }
  const queued = await s.transitionPilot(event.sid, event.pid, PilotState.PENDING_ACTIVE, {
    jobId: job.jobId,
    sandbox: job.sandbox,
    appendLog: [`agent submitted: job ${job.jobId}, sandbox ${job.sandbox}`],
  });
  // The agent may already have activated (ACTIVE is past PENDING_ACTIVE): keep the job facts anyway.
  if (!queued.ok) await s.patchPilot(event.sid, event.pid, { jobId: job.jobId, sandbox: job.sandbox });
  const after = queued.ok ? queued.record : await s.getPilot(event.sid, event.pid);
  if (cancelRequested(after)) throw named(CANCELED_ERROR, 'cancelled during launch');
  return job;
}

/** The Lambda entry: {@link run}, with its log context and metrics. */
export const handler = withMetrics(run);
