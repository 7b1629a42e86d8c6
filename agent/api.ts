/**
 * The agent's only link to the control plane: HTTPS calls to the agent routes, authenticated by the
 * pilot token. Every call has a timeout; transient failures (network, 429, 5xx) are retried with backoff
 * inside a bounded budget, so a short API outage does not kill a pilot but a dead control plane does.
 */

import type { UnitReport } from '../core/wire.ts';

/** A unit as the agent receives it from `POST /agent/pull`. */
export interface PulledUnit {
  uid: string;
  name?: string;
  description: {
    executable: string;
    arguments?: string[];
    environment?: Record<string, string>;
    cores?: number;
    gpus?: number;
    preExec?: string[];
    postExec?: string[];
    stdout?: string;
    stderr?: string;
  };
}

export type { UnitReport } from '../core/wire.ts';

/** Commands the control plane hands back on a heartbeat. */
export interface Commands {
  cancelUnits: string[];
  cancelPilot: boolean;
}

/** Error of a call that must not be retried (4xx other than 429): the pilot is gone or the token is bad. */
export class PermanentApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'PermanentApiError';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Client of the agent routes. */
export class AgentApi {
  /** Request counts per route, for the bench. */
  readonly requests: Record<string, number> = {};

  constructor(
    private readonly apiUrl: string,
    private readonly token: string,
    private readonly retryBudgetMs = 120_000,
  ) {}

  async call<T>(route: string, body: unknown, timeoutMs = 30_000): Promise<T> {
    const started = Date.now();
    let delay = 200;
    for (;;) {
      this.requests[route] = (this.requests[route] ?? 0) + 1;
      let status = 0;
      let text = '';
      try {
        const res = await fetch(`${this.apiUrl}${route}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs),
        });
        status = res.status;
        text = await res.text();
        if (res.ok) return (text ? JSON.parse(text) : {}) as T;
        if (status < 500 && status !== 429)
          throw new PermanentApiError(`${route}: HTTP ${status} ${text}`, status);
      } catch (err) {
        if (err instanceof PermanentApiError) throw err;
        text = String(err);
      }
      if (Date.now() - started + delay > this.retryBudgetMs) {
        throw new Error(`${route}: gave up after ${Date.now() - started} ms: ${status || ''} ${text}`.trim());
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 5_000);
    }
  }

  activate(resourceDetail: unknown): Promise<{ heartbeatIntervalSeconds: number }> {
    return this.call('/agent/activate', { resourceDetail });
  }

  /** Long-polls the pilot's queue (server-side) and returns units already claimed for this pilot. */
  pull(max: number, waitSeconds: number): Promise<{ units: PulledUnit[] }> {
    return this.call('/agent/pull', { max, waitSeconds }, (waitSeconds + 25) * 1000);
  }

  states(updates: UnitReport[]): Promise<{ applied: number; refused: number }> {
    return this.call('/agent/states', { updates });
  }

  heartbeat(stats: unknown): Promise<Commands> {
    return this.call('/agent/heartbeat', { stats });
  }

  done(state: 'Done' | 'Failed', reason: string): Promise<unknown> {
    return this.call('/agent/done', { state, reason });
  }
}
