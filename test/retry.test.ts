/**
 * The one retry policy (core/retry.ts) and the one pagination loop (core/pages.ts), and how the SDK's
 * and the agent's transports classify failures. Backoff is observed on fake timers (the time of each
 * attempt on the faked clock), never by sleeping; the transports are tested against a real HTTP server
 * on 127.0.0.1 that answers what each case needs, with tiny delays so only the attempt counts matter.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AgentApi, PermanentApiError } from '../agent/api.ts';
import { Transport } from '../client/http.ts';
import { BadParameter, DatabaseError, NoSuccess, PilotException } from '../core/errors.ts';
import { allItems, pages } from '../core/pages.ts';
import {
  isTransientResponse,
  RETRY_POLICIES,
  type RetryPolicy,
  Transient,
  transientFetchFailure,
  withRetry,
} from '../core/retry.ts';
import type { Page } from '../core/wire.ts';

describe('withRetry', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  /** Runs `withRetry` on fake timers; returns the faked time of each attempt and the outcome. */
  async function run(policy: RetryPolicy, fail: (attempt: number) => Error | undefined) {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    const times: number[] = [];
    const outcome = withRetry(
      async (attempt) => {
        times.push(performance.now());
        const err = fail(attempt);
        if (err) throw err;
        return `ok after ${attempt}`;
      },
      { policy },
    ).then(
      (value) => ({ value, error: undefined }),
      (error: unknown) => ({ value: undefined, error: error as Error }),
    );
    await vi.runAllTimersAsync();
    const result = await outcome;
    const delays = times.slice(1).map((t, i) => t - (times[i] as number));
    return { ...result, attempts: times.length, delays };
  }

  const policy: RetryPolicy = { baseDelayMs: 100, maxDelayMs: 1_000, maxAttempts: 6, budgetMs: 60_000 };

  it('retries transient failures and returns the first success', async () => {
    const r = await run(policy, (n) => (n < 3 ? new Transient('throttled') : undefined));
    expect(r.value).toBe('ok after 3');
    expect(r.attempts).toBe(3);
  });

  it('throws a non-retryable error at once, unchanged', async () => {
    const bad = new BadParameter('limit: must be a whole number, got "x"');
    const r = await run(policy, () => bad);
    expect(r.error).toBe(bad);
    expect(r.attempts).toBe(1);
  });

  it('budget of attempts spent: the error names the attempts and keeps the last failure as cause', async () => {
    const cause = new Error('HTTP 503');
    const r = await run(policy, (n) => new Transient(`try ${n}`, { cause }));
    expect(r.attempts).toBe(6);
    expect(r.error?.message).toMatch(/gave up after 6 attempts in \d+ ms/);
    expect(r.error?.cause).toBe(cause);
  });

  it('budget of time spent: no attempt starts after it, and the error names the attempts', async () => {
    const timed: RetryPolicy = { baseDelayMs: 100, maxDelayMs: 100_000, maxAttempts: 100, budgetMs: 1_000 };
    const r = await run(timed, () => new Transient('down'));
    // Delays 100–200, 200–400, 400–800, then the rest of the budget: 4 or 5 attempts, the last at 1,000 ms at most.
    expect(r.attempts).toBeGreaterThanOrEqual(4);
    expect(r.attempts).toBeLessThanOrEqual(5);
    expect(r.delays.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(1_000);
    expect(r.error?.message).toContain(`gave up after ${r.attempts} attempts`);
  });

  it('exhausted() decides what is thrown', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    const out = withRetry(
      async () => {
        throw new Transient('left over', { cause: 'unprocessed' });
      },
      {
        policy: { ...policy, maxAttempts: 2 },
        exhausted: (last, spent) => new DatabaseError(`${String(last)} after ${spent.attempts} attempts`),
      },
    ).catch((e: unknown) => e);
    await vi.runAllTimersAsync();
    const err = await out;
    expect(err).toBeInstanceOf(DatabaseError);
    expect((err as Error).message).toBe('unprocessed after 2 attempts');
  });

  it('jitter: delay k lies in [base·2^(k-1), 2·base·2^(k-1)), capped at maxDelayMs', async () => {
    const lowest = vi.spyOn(Math, 'random').mockReturnValue(0);
    const low = await run(policy, () => new Transient('x'));
    expect(low.delays).toEqual([100, 200, 400, 800, 1_000]);
    lowest.mockReturnValue(0.999);
    const high = await run(policy, () => new Transient('x'));
    expect(high.delays).toEqual([200, 400, 800, 1_000, 1_000]); // rounded: 1.999 × 400 = 799.6
    lowest.mockRestore();
    // Real randomness: every delay within its bounds, and not all at the floor (jitter is on).
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await run(policy, () => new Transient('x'));
      r.delays.forEach((d, k) => {
        const floor = Math.min(100 * 2 ** k, 1_000);
        expect(d).toBeGreaterThanOrEqual(floor);
        expect(d).toBeLessThanOrEqual(Math.min(2 * floor, 1_000));
      });
      seen.push(...r.delays.slice(0, 3));
    }
    expect(seen.some((d, i) => d !== 100 * 2 ** (i % 3))).toBe(true);
  });

  it('the store policy keeps its 8 attempts', () => {
    expect(RETRY_POLICIES.store.maxAttempts).toBe(8);
  });
});

describe('classification', () => {
  it('HTTP: 429 and 502–504 are transient, a gateway 500 too, a Sortie 500 and 4xx are not', () => {
    const sortie500 = { error: { code: 'PilotException', message: 'internal error' } };
    expect([429, 502, 503, 504].map((s) => isTransientResponse(s, undefined))).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(isTransientResponse(500, 'Internal Server Error')).toBe(true);
    expect(isTransientResponse(500, { message: 'Internal Server Error' })).toBe(true);
    expect(isTransientResponse(500, sortie500)).toBe(false);
    expect([400, 401, 403, 404, 409, 501].map((s) => isTransientResponse(s, undefined))).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
  });

  it('a call that is not safe to retry: only 429 and a refused connection', () => {
    expect([429, 500, 502, 503, 504].map((s) => isTransientResponse(s, 'x', false))).toEqual([
      true,
      false,
      false,
      false,
      false,
    ]);
    const refused = new TypeError('fetch failed', {
      cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }),
    });
    const reset = new TypeError('fetch failed', {
      cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }),
    });
    expect(transientFetchFailure(refused, 'GET /x', false)).toBeInstanceOf(Transient);
    expect(transientFetchFailure(reset, 'GET /x', false)).toBeUndefined();
    expect(transientFetchFailure(reset, 'GET /x')?.message).toBe('GET /x: TypeError: fetch failed (x)');
    const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    expect(transientFetchFailure(timeout, 'GET /x')?.message).toBe(
      'GET /x: TimeoutError: The operation was aborted due to timeout',
    );
    expect(transientFetchFailure('boom', 'GET /x')?.message).toBe('GET /x: boom');
  });
});

describe('pages', () => {
  const list = ['a', 'b', 'c', 'd', 'e'];
  /** A list served 2 per page, `next` being the index of the next item. */
  const fetcher = vi.fn(async (next: string | undefined): Promise<Page<string>> => {
    const from = next ? Number(next) : 0;
    const to = from + 2;
    return { items: list.slice(from, to), cursor: '', ...(to < list.length ? { next: String(to) } : {}) };
  });

  it('follows next to the end, one page at a time', async () => {
    fetcher.mockClear();
    expect(await allItems(fetcher)).toEqual(list);
    expect(fetcher.mock.calls.map((c) => c[0])).toEqual([undefined, '2', '4']);
    const sizes: number[] = [];
    for await (const p of pages(fetcher)) sizes.push(p.items.length);
    expect(sizes).toEqual([2, 2, 1]);
  });

  it('a single page is fetched once', async () => {
    const one = vi.fn(async () => ({ items: [1], cursor: 'c' }));
    expect(await allItems(one)).toEqual([1]);
    expect(one).toHaveBeenCalledTimes(1);
  });
});

describe('the transports on the policy (real HTTP on 127.0.0.1)', () => {
  let server: Server;
  let url: string;
  /** Replies per path, consumed in order; the last one repeats. */
  const script = new Map<string, { status: number; body: string }[]>();
  const hits = new Map<string, number>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const path = (req.url ?? '').split('?')[0] as string;
        const n = hits.get(path) ?? 0;
        hits.set(path, n + 1);
        const replies = script.get(path) ?? [{ status: 404, body: '' }];
        const r = replies[Math.min(n, replies.length - 1)] as { status: number; body: string };
        res.writeHead(r.status, { 'content-type': 'application/json' }).end(r.body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const dbDown = {
    status: 503,
    body: JSON.stringify({ error: { code: 'DatabaseError', message: 'throttled' } }),
  };
  const bug = {
    status: 500,
    body: JSON.stringify({ error: { code: 'PilotException', message: 'internal error' } }),
  };
  const gateway500 = { status: 500, body: JSON.stringify({ message: 'Internal Server Error' }) };
  const ok = { status: 200, body: JSON.stringify({ fine: true }) };

  it('SDK: retries a 503 until it succeeds', async () => {
    script.set('/a', [dbDown, dbDown, ok]);
    const t = new Transport({ endpoint: url });
    expect(await t.request('GET', '/a')).toEqual({ fine: true });
    expect(hits.get('/a')).toBe(3);
  });

  it('SDK: a Sortie 500 is not retried', async () => {
    script.set('/b', [bug, ok]);
    const err = await new Transport({ endpoint: url }).request('GET', '/b').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PilotException);
    expect((err as PilotException).message).toBe('internal error');
    expect(hits.get('/b')).toBe(1);
  });

  it('SDK: budget spent keeps the class of the failure and names the attempts', async () => {
    script.set('/c', [dbDown]);
    const err = await new Transport({ endpoint: url, retryBudgetMs: 250 })
      .request('GET', '/c')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatabaseError);
    expect((err as Error).message).toMatch(
      new RegExp(`^GET /c: throttled \\(after ${hits.get('/c')} attempts in \\d+ ms\\)$`),
    );
    expect(hits.get('/c')).toBeGreaterThan(1);
  });

  it('SDK: a call marked not safe to retry is not repeated after a 503', async () => {
    script.set('/d', [dbDown, ok]);
    const err = await new Transport({ endpoint: url })
      .request('POST', '/d', {}, undefined, { safeToRetry: false })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatabaseError);
    expect(hits.get('/d')).toBe(1);
  });

  it('SDK: a refused connection is retried (nothing was sent), within the budget', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const t = new Transport({ endpoint: `http://127.0.0.1:${port}`, retryBudgetMs: 250 });
    const err = await t.request('POST', '/x', {}, undefined, { safeToRetry: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoSuccess);
    expect(t.requests['POST /x']).toBeGreaterThan(1);
    expect((err as Error).message).toContain(`after ${t.requests['POST /x']} attempts`);
  });

  it('agent: a gateway 500 is retried, a 4xx is permanent, a Sortie 500 is not retried', async () => {
    script.set('/agent/heartbeat', [
      gateway500,
      { status: 200, body: '{"cancelUnits":[],"cancelPilot":false,"seen":3}' },
    ]);
    script.set('/agent/done', [{ status: 404, body: '{"error":{"code":"DoesNotExist","message":"gone"}}' }]);
    script.set('/agent/states', [bug, ok]);
    const api = new AgentApi(url, 'token', 5_000);
    await api.heartbeat({});
    expect(api.inbox.seen).toBe(3); // the answer went to the command inbox
    expect(hits.get('/agent/heartbeat')).toBe(2);
    const gone = await api.done('Done', 'x').catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(PermanentApiError);
    expect(hits.get('/agent/done')).toBe(1);
    const broken = await api.states([]).catch((e: unknown) => e);
    expect(broken).not.toBeInstanceOf(PermanentApiError);
    expect(hits.get('/agent/states')).toBe(1);
  });

  it('agent: budget spent names the route and the attempts', async () => {
    script.set('/agent/pull', [dbDown]);
    const err = await new AgentApi(url, 'token', 250).pull(1, 0).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      new RegExp(`^/agent/pull: gave up after ${hits.get('/agent/pull')} attempts in \\d+ ms: `),
    );
  });
});
