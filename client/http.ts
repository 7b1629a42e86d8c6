/**
 * The SDK's HTTP transport: JSON over fetch, bearer token, a timeout on every call, bounded retries of
 * transient failures (network errors, 429, 502–504), and typed errors rebuilt from the API's error body.
 */
import { randomUUID } from 'node:crypto';
import { fromWire, NoSuccess, PilotException } from '../core/errors.ts';

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
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A JSON client of the Sortie HTTP API. */
export class Transport {
  readonly endpoint: string;
  token: string | undefined;
  /** Requests made, by `METHOD path-template`; the bench reads it. */
  readonly requests: Record<string, number> = {};
  private readonly timeoutMs: number;
  private readonly retryBudgetMs: number;

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
    this.retryBudgetMs = opts.retryBudgetMs ?? 30_000;
  }

  async request<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    query?: Record<string, string | undefined>,
    /** For creating calls: the request token, kept across this call's retries. */
    opts: { requestToken?: string } = {},
  ): Promise<T> {
    const url = new URL(this.endpoint + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const key = `${method} ${path.replace(/\/(session|pilot|unit|pmgr|umgr)\.[^/]+/g, '/{$1}')}`;
    const started = Date.now();
    let delay = 100;
    for (;;) {
      this.requests[key] = (this.requests[key] ?? 0) + 1;
      let res: Response | undefined;
      let failure: unknown;
      try {
        res = await fetch(url, {
          method,
          headers: {
            ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
            ...(opts.requestToken ? { [REQUEST_TOKEN_HEADER]: opts.requestToken } : {}),
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        failure = err;
      }
      if (res) {
        const text = await res.text();
        const parsed: unknown = text ? safeJson(text) : undefined;
        if (res.ok) return parsed as T;
        if (![429, 502, 503, 504].includes(res.status)) throw fromWire(res.status, parsed ?? text);
        failure = fromWire(res.status, parsed ?? text);
      }
      if (Date.now() - started + delay > this.retryBudgetMs) {
        if (failure instanceof PilotException) throw failure;
        throw new NoSuccess(`${method} ${url.pathname}: ${String(failure)}`, { cause: failure });
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 2_000);
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
