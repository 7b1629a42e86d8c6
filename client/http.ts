/**
 * The SDK's HTTP transport: JSON over fetch, bearer token, a timeout on every call, retries of transient
 * failures under the one retry policy (core/retry.ts), typed errors rebuilt from the API's error body,
 * and a paginator for list routes.
 */
import { randomUUID } from 'node:crypto';
import { fromWire, NoSuccess, PilotException } from '../core/errors.ts';
import { allItems, type PageFetcher, pages } from '../core/pages.ts';
import {
  httpAttempt,
  isHttpAnswer,
  RETRY_POLICIES,
  type RetryPolicy,
  Transient,
  withRetry,
} from '../core/retry.ts';
import type { Page } from '../core/wire.ts';

/**
 * Header of the client request token: a creating POST sends a fresh one per call and the same one on each
 * retry of that call, so the API creates once however often the request arrives (functions/lib/idempotency.ts).
 */
export const REQUEST_TOKEN_HEADER = 'x-sortie-request-token';

/** A fresh client request token for one creating call. */
export function newRequestToken(): string {
  return randomUUID().replaceAll('-', '');
}

/** Options of one API connection. */
export interface TransportOptions {
  /** Base URL of the Sortie API; default env SORTIE_API_URL. */
  endpoint?: string;
  /** Per-request timeout (ms). */
  timeoutMs?: number;
  /** Total time a call may spend retrying transient failures (ms). */
  retryBudgetMs?: number;
  /** Items per page of list calls; default the server's (a page ends at 1 MB). */
  pageSize?: number;
}

/** Options of one call. */
export interface CallOptions {
  /**
   * Whether the call may run twice (default true, for every call, as before idempotency keys). When false,
   * only failures that prove the request was not processed are retried: 429, and a refused connection.
   */
  safeToRetry?: boolean;
  /** For creating calls: the client request token, sent on every retry of this call (see REQUEST_TOKEN_HEADER). */
  requestToken?: string;
}

type Query = Record<string, string | undefined>;

/** A JSON client of the Sortie HTTP API. */
export class Transport {
  readonly endpoint: string;
  token: string | undefined;
  /** Requests made, by `METHOD path-template`; the bench reads it. */
  readonly requests: Record<string, number> = {};
  private readonly timeoutMs: number;
  private readonly policy: RetryPolicy;
  private readonly pageSize: number | undefined;

  constructor(opts: TransportOptions = {}, token?: string) {
    const endpoint = opts.endpoint ?? process.env.SORTIE_API_URL;
    if (!endpoint) {
      throw new PilotException(
        'no Sortie endpoint: pass { endpoint } or set SORTIE_API_URL (e.g. start one with `npx sortie up`)',
      );
    }
    this.endpoint = endpoint.replace(/\/+$/, '');
    this.token = token;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.policy = { ...RETRY_POLICIES.sdk, budgetMs: opts.retryBudgetMs ?? RETRY_POLICIES.sdk.budgetMs };
    this.pageSize = opts.pageSize;
  }

  async request<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    query?: Query,
    call: CallOptions = {},
  ): Promise<T> {
    const url = new URL(this.endpoint + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const key = `${method} ${path.replace(/\/(session|pilot|unit|pmgr|umgr)\.[^/]+/g, '/{$1}')}`;
    const what = `${method} ${url.pathname}`;
    return withRetry(
      async () => {
        this.requests[key] = (this.requests[key] ?? 0) + 1;
        const send = () =>
          fetch(url, {
            method,
            headers: {
              ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
              ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
              ...(call.requestToken ? { [REQUEST_TOKEN_HEADER]: call.requestToken } : {}),
            },
            ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
            signal: AbortSignal.timeout(this.timeoutMs),
          });
        const answer = await httpAttempt(send, what, call.safeToRetry ?? true).catch((err: unknown) => {
          throw err instanceof Transient ? err : new NoSuccess(`${what}: ${String(err)}`, { cause: err });
        });
        if (answer.ok) return answer.body as T;
        throw fromWire(answer.status, answer.body ?? answer.text);
      },
      {
        policy: this.policy,
        // The class of the last failure (DatabaseError for a 503, …) is kept; the message says how long we tried.
        exhausted: (last, spent) => {
          const tried = `after ${spent.attempts} attempts in ${spent.elapsedMs} ms`;
          if (isHttpAnswer(last)) {
            const failure = fromWire(last.status, last.body ?? last.text);
            const Class = failure.constructor as new (m: string, o: object) => PilotException;
            return new Class(`${what}: ${failure.message} (${tried})`, {
              cause: failure,
              ...(failure.obj !== undefined ? { obj: failure.obj } : {}),
            });
          }
          return new NoSuccess(`${what}: ${String(last)} (${tried})`, { cause: last });
        },
      },
    );
  }

  /**
   * Every page of a list route, following `next` to the end (the SDK's paginator). `query.since` makes it
   * a change feed: the last page's `cursor` goes back as `since` next time.
   */
  paginate<T>(path: string, query: Query = {}): AsyncGenerator<Page<T>> {
    return pages(this.pageFetcher<T>(path, query));
  }

  /** All items of a list route, every page. */
  list<T>(path: string, query: Query = {}): Promise<T[]> {
    return allItems(this.pageFetcher<T>(path, query));
  }

  private pageFetcher<T>(path: string, query: Query): PageFetcher<T> {
    const limit = this.pageSize === undefined ? undefined : String(this.pageSize);
    return (next) => this.request<Page<T>>('GET', path, undefined, { ...query, limit, next });
  }
}
