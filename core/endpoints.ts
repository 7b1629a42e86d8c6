/**
 * Endpoint mode, as pure rules: what the pilot machine asks a user-run endpoint (launch, check, cancel,
 * tail a pilot's job), how the endpoint's answers are checked, and what a job check says while the
 * endpoint is silent. An endpoint is a process the user runs on a site's login node inside their own
 * (MFA-authenticated) login; it long-polls the API for these requests and answers them, so the cloud
 * never logs in to the site.
 */
import { BadParameter } from './errors.ts';

/** What the pilot machine asks an endpoint to do for one pilot. */
export const ENDPOINT_OPS = ['launch', 'check', 'cancel', 'tail'] as const;
/** One of {@link ENDPOINT_OPS}. */
export type EndpointOp = (typeof ENDPOINT_OPS)[number];

/** Longest long poll, seconds: inside the API's 29 s Lambda timeout and API Gateway's 30 s. */
export const MAX_POLL_SECONDS = 20;

/** An endpoint id: `endpoint.` and 16 hex digits. */
export const ENDPOINT_ID = /^endpoint\.[0-9a-f]{16}$/;

/** A batch job as an answer or a request carries it. */
export interface EndpointJob {
  jobId: string;
  sandbox: string;
  nodes?: string[];
}

/** A batch job's state as an endpoint reports it. */
export interface EndpointJobState {
  state: 'queued' | 'running' | 'finished';
  detail?: string;
}

/** An endpoint's answer to one request, checked. */
export type EndpointAnswer =
  | { pilotId: string; op: EndpointOp; seq: number; ok: false; error: string }
  | { pilotId: string; op: 'launch'; seq: number; ok: true; job: EndpointJob }
  | { pilotId: string; op: 'check'; seq: number; ok: true; status: EndpointJobState }
  | { pilotId: string; op: 'cancel'; seq: number; ok: true }
  | { pilotId: string; op: 'tail'; seq: number; ok: true; text: string };

/** Longest error, detail or tail an answer may carry (bytes of UTF-16, roughly): the rest is cut. */
export const MAX_ANSWER_TEXT = 16_384;

const shortText = (v: string): string => (v.length > MAX_ANSWER_TEXT ? v.slice(-MAX_ANSWER_TEXT) : v);

function need(ok: boolean, field: string, got: unknown, what: string): void {
  if (!ok)
    throw new BadParameter(
      `endpoint answer.${field}: must be ${what}, got ${JSON.stringify(got)?.slice(0, 80)}`,
    );
}

const isId = (v: unknown): v is string => typeof v === 'string' && /^[\w.-]{1,128}$/.test(v);

/**
 * Checks an endpoint's answer body.
 * @throws BadParameter naming the field and the value.
 */
export function parseEndpointAnswer(body: Record<string, unknown>): EndpointAnswer {
  const { pilotId, op, seq, ok } = body;
  need(isId(pilotId), 'pilotId', pilotId, 'a pilot id');
  need(ENDPOINT_OPS.includes(op as EndpointOp), 'op', op, `one of ${ENDPOINT_OPS.join(', ')}`);
  need(Number.isInteger(seq) && (seq as number) >= 0, 'seq', seq, 'a non-negative integer');
  need(typeof ok === 'boolean', 'ok', ok, 'true or false');
  const base = { pilotId: pilotId as string, seq: seq as number };
  if (!ok) {
    need(typeof body.error === 'string' && body.error.length > 0, 'error', body.error, 'a message');
    return { ...base, op: op as EndpointOp, ok: false, error: shortText(body.error as string) };
  }
  switch (op as EndpointOp) {
    case 'launch': {
      const job = body.job as Record<string, unknown> | undefined;
      need(isId(job?.jobId), 'job.jobId', job?.jobId, 'a job id');
      need(
        typeof job?.sandbox === 'string' && job.sandbox.startsWith('/') && job.sandbox.length <= 1024,
        'job.sandbox',
        job?.sandbox,
        'an absolute path',
      );
      return {
        ...base,
        op: 'launch',
        ok: true,
        job: { jobId: job?.jobId as string, sandbox: job?.sandbox as string },
      };
    }
    case 'check': {
      const s = body.status as Record<string, unknown> | undefined;
      need(
        ['queued', 'running', 'finished'].includes(s?.state as string),
        'status.state',
        s?.state,
        'queued, running or finished',
      );
      need(s?.detail === undefined || typeof s.detail === 'string', 'status.detail', s?.detail, 'a string');
      const state = s?.state as EndpointJobState['state'];
      return {
        ...base,
        op: 'check',
        ok: true,
        status: { state, ...(typeof s?.detail === 'string' ? { detail: shortText(s.detail) } : {}) },
      };
    }
    case 'tail':
      need(typeof body.text === 'string', 'text', body.text, 'a string');
      return { ...base, op: 'tail', ok: true, text: shortText(body.text as string) };
    default:
      return { ...base, op: 'cancel', ok: true };
  }
}

/**
 * Seconds a long poll may wait, from the request (default {@link MAX_POLL_SECONDS}).
 * @throws BadParameter for anything but a number from 0 to MAX_POLL_SECONDS.
 */
export function pollSeconds(raw: unknown): number {
  if (raw === undefined) return MAX_POLL_SECONDS;
  if (typeof raw !== 'number' || !(raw >= 0 && raw <= MAX_POLL_SECONDS))
    throw new BadParameter(
      `endpoint poll.waitSeconds: must be a number from 0 to ${MAX_POLL_SECONDS}, got ${JSON.stringify(raw)}`,
    );
  return raw;
}

/**
 * What a job check uses when the endpoint has not answered this time: its last answer, marked as old
 * (an endpoint that is down delays the checks, it does not end the pilot); before any answer, the job
 * counts as queued, so the queue limit, not the activation deadline, bounds the wait.
 */
export function silentEndpointView(
  resource: string,
  last: EndpointJobState | undefined,
  lastSeen: string | undefined,
): EndpointJobState {
  const silent = `the endpoint for ${resource} has not answered${lastSeen ? ` (last seen ${lastSeen})` : ' (never seen)'}`;
  if (!last) return { state: 'queued', detail: silent };
  return { state: last.state, detail: `${last.detail ? `${last.detail}; ` : ''}${silent}` };
}

/** The reason a launch request waits, for the pilot's log and the job check's view. */
export function launchWaitDetail(resource: string, lastSeen: string | undefined): string {
  return `launch request waiting for the endpoint of ${resource}${lastSeen ? ` (last seen ${lastSeen})` : ' (no endpoint has polled yet: start one with `sortie endpoint start`)'}`;
}
