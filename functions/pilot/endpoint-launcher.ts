/**
 * The launcher of `endpoint` resources (MFA sites): nothing logs in to the site. Each launch, check,
 * cancel and tail becomes a request record the user's endpoint (a `sortie endpoint start` on the login
 * node) long-polls for and answers; the step waits a little for the answer and otherwise moves on: a
 * launch leaves the pilot LAUNCHING with its request pending (the job checks then see it queued, under the
 * queue limit), a check uses the endpoint's last answer, a cancel stays pending until the endpoint comes
 * back. So an endpoint that is down delays pilots but loses nothing.
 */
import {
  type EndpointJob,
  type EndpointOp,
  launchWaitDetail,
  silentEndpointView,
} from '../../core/endpoints.ts';
import { NoSuccess } from '../../core/errors.ts';
import type { EndpointRequestRecord, PilotRecord } from '../../store/index.ts';
import { store } from '../lib/store.ts';
import type { JobStatus, Launcher, LaunchRequest, LaunchResult } from './launcher/types.ts';

/** The launch request is waiting for the endpoint: the pilot stays LAUNCHING (not an error of the pilot). */
export class EndpointPending extends Error {
  override readonly name = 'EndpointPending';
}

/** How long a step waits for an endpoint's answer before moving on (ms), per kind. */
export const ANSWER_WAIT_MS: Record<EndpointOp, number> = {
  launch: 10_000,
  check: 15_000,
  cancel: 20_000,
  tail: 10_000,
};

/** How often a waiting step reads the request (ms). */
const POLL_MS = 250;

/**
 * Asks the endpoint of `resource` (or finds the request already asked) and waits up to `waitMs` for its
 * answer. Returns the request as last read: answered, or still pending.
 */
export async function askAndWait(
  r: { sessionId: string; pilotId: string; op: EndpointOp; resource: string; job?: EndpointJob },
  waitMs: number,
): Promise<EndpointRequestRecord> {
  const s = store();
  let req = await s.askEndpoint(r);
  const deadline = Date.now() + waitMs;
  while (req.status === 'pending' && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, POLL_MS));
    req = (await s.getEndpointRequest(r.sessionId, r.pilotId, r.op)) ?? req;
  }
  return req;
}

/** When the endpoint of a session's resource last polled, if it has. */
export async function endpointLastSeen(sessionId: string, resource: string): Promise<string | undefined> {
  const seen = (await store().listEndpoints(sessionId))
    .filter((e) => e.resource === resource && e.lastSeen)
    .map((e) => e.lastSeen as string)
    .sort();
  return seen.at(-1);
}

/** The job facts of a launch result, as requests carry them. */
function jobOf(job: LaunchResult): EndpointJob {
  return { jobId: job.jobId, sandbox: job.sandbox, ...(job.nodes?.length ? { nodes: [...job.nodes] } : {}) };
}

/** Launch, check, cancel and tail through the session's endpoint for the resource. */
export class EndpointLauncher implements Launcher {
  async launch(req: LaunchRequest): Promise<LaunchResult> {
    const r = await askAndWait(
      { sessionId: req.sessionId, pilotId: req.pilotId, op: 'launch', resource: req.resource },
      ANSWER_WAIT_MS.launch,
    );
    if (r.status === 'withdrawn') throw new NoSuccess('launch request was withdrawn (the pilot ended)');
    if (r.status === 'pending')
      throw new EndpointPending(
        launchWaitDetail(req.resource, await endpointLastSeen(req.sessionId, req.resource)),
      );
    if (!r.answer?.ok || !r.answer.job)
      throw new NoSuccess(`endpoint could not launch: ${r.answer?.error ?? 'no job in its answer'}`, {
        obj: req.pilotId,
      });
    return { jobId: r.answer.job.jobId, sandbox: r.answer.job.sandbox };
  }

  async status(req: LaunchRequest, job: LaunchResult): Promise<JobStatus> {
    const r = await askAndWait(
      {
        sessionId: req.sessionId,
        pilotId: req.pilotId,
        op: 'check',
        resource: req.resource,
        job: jobOf(job),
      },
      ANSWER_WAIT_MS.check,
    );
    if (r.status === 'answered' && r.answer?.ok && r.answer.status) return r.answer.status;
    // Not answered in time, or the batch system could not be asked: the last answer, marked as old.
    const view = silentEndpointView(
      req.resource,
      r.lastStatus,
      await endpointLastSeen(req.sessionId, req.resource),
    );
    return r.answer?.error
      ? { ...view, detail: `${view.detail}; last check failed: ${r.answer.error}` }
      : view;
  }

  async cancel(req: LaunchRequest, job: LaunchResult): Promise<void> {
    const r = await askAndWait(
      {
        sessionId: req.sessionId,
        pilotId: req.pilotId,
        op: 'cancel',
        resource: req.resource,
        job: jobOf(job),
      },
      ANSWER_WAIT_MS.cancel,
    );
    // Pending: the request stays, and the endpoint cancels the job when it is back.
    if (r.status === 'answered' && r.answer && !r.answer.ok)
      throw new NoSuccess(`endpoint could not cancel job ${job.jobId}: ${r.answer.error}`, {
        obj: req.pilotId,
      });
  }

  async tail(req: LaunchRequest, job: LaunchResult, _lines: number): Promise<string> {
    const r = await askAndWait(
      { sessionId: req.sessionId, pilotId: req.pilotId, op: 'tail', resource: req.resource, job: jobOf(job) },
      ANSWER_WAIT_MS.tail,
    );
    return r.status === 'answered' && r.answer?.ok ? (r.answer.text ?? '') : '';
  }
}

/**
 * A pilot that ends before its endpoint reported a job: take its launch request back, or, when the
 * endpoint launched it meanwhile, ask it to cancel that job. Returns a line for the pilot's log.
 */
export async function withdrawLaunch(pilot: PilotRecord): Promise<string | undefined> {
  const s = store();
  const resource = pilot.description.resource;
  if (await s.withdrawEndpointRequest(pilot.sessionId, pilot.uid, 'launch'))
    return `launch request withdrawn from the endpoint of ${resource}`;
  const launch = await s.getEndpointRequest(pilot.sessionId, pilot.uid, 'launch');
  const job = launch?.answer?.ok ? launch.answer.job : undefined;
  if (!job) return undefined;
  await s.askEndpoint({ sessionId: pilot.sessionId, pilotId: pilot.uid, op: 'cancel', resource, job });
  return `endpoint launched job ${job.jobId} as the pilot ended: asked it to cancel the job`;
}
