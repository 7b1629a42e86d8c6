/**
 * The one retry policy of the SDK, the agent and the store: jittered exponential backoff inside a retry
 * budget (attempts and time), on p-retry. It is in core/ because all three use it and none of them may
 * import another's layer; it does no I/O, only waits.
 *
 * What may be retried is decided in one place too: a caller turns a failure a retry may fix into a
 * {@link Transient} (the transports by {@link isTransientResponse} and {@link transientFetchFailure}, the
 * store for what DynamoDB left unprocessed); everything else is thrown at once, unchanged.
 */
import pRetry from 'p-retry';
import { parseBody } from './wire.ts';

/** How long and how often to retry. Delay k (k = 1, 2, …) is drawn from [base·2^(k-1), 2·base·2^(k-1)), capped at `maxDelayMs`. */
export interface RetryPolicy {
  /** First backoff before jitter (ms). */
  baseDelayMs: number;
  /** Cap of one backoff (ms). */
  maxDelayMs: number;
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Time from the first attempt after which no further attempt starts (ms). */
  budgetMs: number;
}

/** Built-in policies: what each caller can afford to wait. */
export const RETRY_POLICIES = {
  /** The SDK: a user is waiting; 30 s outlasts an API deployment or a throttling burst. */
  sdk: { baseDelayMs: 100, maxDelayMs: 2_000, maxAttempts: Number.POSITIVE_INFINITY, budgetMs: 30_000 },
  /** The agent: a short control-plane outage must not kill a pilot, a dead control plane must. */
  agent: { baseDelayMs: 200, maxDelayMs: 5_000, maxAttempts: Number.POSITIVE_INFINITY, budgetMs: 120_000 },
  /** The store's batch remainders: DynamoDB asks to back off; the SDK below has already retried errors. */
  store: { baseDelayMs: 25, maxDelayMs: 2_000, maxAttempts: 8, budgetMs: 30_000 },
} as const satisfies Record<string, RetryPolicy>;

/**
 * A failure that a later attempt may not meet: throttled, unavailable, a network blip, a partial batch.
 * Only these are retried; `cause` holds the failure itself.
 */
export class Transient extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'Transient';
  }
}

/**
 * HTTP statuses that say the service failed, not the request: 429 throttled, 502 bad gateway, 503
 * unavailable (Sortie's DatabaseError), 504 gateway or upstream timeout.
 */
const TRANSIENT_STATUS: readonly number[] = [429, 502, 503, 504];

/**
 * Whether a response is worth a retry, from its status and (parsed) body. A 500 counts only when the
 * gateway sent it (API Gateway answers 500 for a crashed or throttled Lambda); a 500 with Sortie's error
 * body is a handler's unexpected error, which the same request would meet again. With `safeToRetry` false
 * (a call that must not run twice) only 429 counts: the gateway refused it before any handler ran.
 */
export function isTransientResponse(status: number, body: unknown, safeToRetry = true): boolean {
  if (!safeToRetry) return status === 429;
  if (status === 500) return !(typeof body === 'object' && body !== null && 'error' in body);
  return TRANSIENT_STATUS.includes(status);
}

/**
 * A `fetch` that threw (network error, refused connection, timeout) as a {@link Transient}, or undefined
 * when it must not be retried. With `safeToRetry` false only a refused connection counts: nothing was sent.
 */
export function transientFetchFailure(err: unknown, what: string, safeToRetry = true): Transient | undefined {
  const codeOf = (e: unknown) => (e as { code?: unknown } | undefined)?.code;
  const refused =
    codeOf(err) === 'ECONNREFUSED' || codeOf((err as Error | undefined)?.cause) === 'ECONNREFUSED';
  if (!safeToRetry && !refused) return undefined;
  return new Transient(`${what}: ${describe(err)}`, { cause: err });
}

/** One HTTP attempt's answer, its body read (parsed as JSON when it is JSON). */
export interface HttpAnswer {
  status: number;
  ok: boolean;
  text: string;
  body: unknown;
}

/**
 * Makes one HTTP attempt with `send` (the caller's fetch) and applies the one classification: a
 * transient failure (network, refused, timeout; or a status {@link isTransientResponse} accepts) throws
 * a {@link Transient}; a `send` that threw otherwise rethrows as is; any other answer, ok or not, is
 * returned for the caller to turn into its result or its own error.
 */
export async function httpAttempt(
  send: () => Promise<Response>,
  what: string,
  safeToRetry = true,
): Promise<HttpAnswer> {
  let res: Response;
  try {
    res = await send();
  } catch (err) {
    throw transientFetchFailure(err, what, safeToRetry) ?? err;
  }
  const text = await res.text();
  const answer: HttpAnswer = {
    status: res.status,
    ok: res.ok,
    text,
    body: text ? parseBody(text) : undefined,
  };
  // The answer is the cause: a caller whose budget runs out turns it into its own error.
  if (!res.ok && isTransientResponse(res.status, answer.body, safeToRetry))
    throw new Transient(`${what}: HTTP ${res.status} ${text}`.trim(), { cause: answer });
  return answer;
}

/** Whether a failure (a {@link Transient}'s cause) is an {@link HttpAnswer}. */
export function isHttpAnswer(x: unknown): x is HttpAnswer {
  return typeof x === 'object' && x !== null && 'status' in x && 'text' in x && 'ok' in x;
}

/** What the caller learns when the budget is spent. */
export interface Spent {
  attempts: number;
  elapsedMs: number;
}

/** Options of one {@link withRetry} call. */
export interface RetryOptions {
  policy: RetryPolicy;
  /**
   * The error to throw when the budget is spent, from the last transient failure's cause; by default an
   * Error naming the attempts and the time spent.
   */
  exhausted?: (last: unknown, spent: Spent) => Error;
}

/**
 * Runs `fn` until it succeeds, throws something other than a {@link Transient} (thrown at once, as is),
 * or spends the policy's budget (then `exhausted` decides what is thrown).
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const { policy } = options;
  let attempts = 0;
  const started = performance.now();
  try {
    return await pRetry(
      (attempt) => {
        attempts = attempt;
        return fn(attempt);
      },
      {
        retries: policy.maxAttempts - 1,
        minTimeout: policy.baseDelayMs,
        maxTimeout: policy.maxDelayMs,
        factor: 2,
        randomize: true,
        maxRetryTime: policy.budgetMs,
        shouldRetry: ({ error }) => error instanceof Transient,
      },
    );
  } catch (err) {
    if (!(err instanceof Transient)) throw err;
    const spent = { attempts, elapsedMs: Math.round(performance.now() - started) };
    if (options.exhausted) throw options.exhausted(err.cause ?? err, spent);
    throw new Error(`${err.message} (gave up after ${attempts} attempts in ${spent.elapsedMs} ms)`, {
      cause: err.cause ?? err,
    });
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
  return `${err.name}: ${err.message}${cause}`;
}
