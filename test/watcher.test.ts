/**
 * The SDK's change-feed follower (client/watcher.ts), fed pages by the test: every state a record
 * entered reaches callbacks exactly once and in order, whatever the feed repeats, skips or reorders;
 * waits end on the state the feed shows, on a client error, or by their own timeout naming laggards.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type FeedHold, type Followed, Watcher } from '../client/watcher.ts';
import { DoesNotExist, NoSuccess, Timeout } from '../core/errors.ts';
import { pages } from '../core/pages.ts';
import type { BriefRecord, Page } from '../core/wire.ts';

type S = 'New' | 'Executing' | 'Done' | 'Failed';
type R = Followed<S>;

/** Rank of a state: a wait for a state is over once a record reached it or went past it. */
const rank = (s: S): number => ({ New: 0, Executing: 1, Done: 2, Failed: 2 })[s];

const T0 = Date.parse('2026-12-04T10:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

/** A record whose history is `states`, last changed at second `s`. */
function rec(uid: string, states: S[], s: number): R {
  return {
    uid,
    state: states.at(-1) as S,
    stateHistory: states.map((state, i) => ({ state, time: at(i) })),
    changed: `${at(s)}#${uid}`,
  };
}

/** A feed the test fills: each fetch returns (and consumes) the next queued page, else an empty one. */
function feed() {
  const pages: Page<R>[] = [];
  const asked: (string | undefined)[] = [];
  let cursor = at(0);
  let failure: unknown;
  const fetchPage = async (since: string | undefined, _next: string | undefined): Promise<Page<R>> => {
    asked.push(since);
    if (failure) throw failure;
    const page = pages.shift() ?? { items: [], cursor };
    cursor = page.cursor;
    return page;
  };
  return {
    fetchPage,
    asked,
    push: (items: R[], c: string, next?: string) =>
      pages.push({ items, cursor: c, ...(next ? { next } : {}) }),
    fail: (err: unknown) => {
      failure = err;
    },
  };
}

const stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
  vi.restoreAllMocks();
});

function follow(f: ReturnType<typeof feed>) {
  const w = new Watcher<S, R>(
    (since) => pages((next) => f.fetchPage(since, next)),
    ['Done', 'Failed'],
    rank,
    5,
    20,
  );
  const seen: string[] = [];
  stops.push(w.register((r, state) => seen.push(`${r.uid}:${state}`)));
  return { w, seen };
}

describe('Watcher: each state once, in order', () => {
  it('delivers every state of a history, including those a coalesced write skipped', async () => {
    const f = feed();
    const { w, seen } = follow(f);
    f.push([rec('u1', ['New'], 1)], at(1));
    await w.poll();
    // The agent's one write took u1 from New through Executing to Done: the feed shows only the end.
    f.push([rec('u1', ['New', 'Executing', 'Done'], 3)], at(3));
    await w.poll();
    expect(seen).toEqual(['u1:New', 'u1:Executing', 'u1:Done']);
    expect(w.records.get('u1')?.state).toBe('Done');
  });

  it('re-reading the same records (the overlap window) delivers nothing twice', async () => {
    const f = feed();
    const { w, seen } = follow(f);
    const u1 = rec('u1', ['New', 'Executing'], 2);
    f.push([u1], at(2));
    f.push([u1], at(2));
    f.push([{ ...u1 }, rec('u2', ['New'], 2)], at(2));
    await w.poll();
    await w.poll();
    await w.poll();
    expect(seen).toEqual(['u1:New', 'u1:Executing', 'u2:New']);
  });

  it('a stale copy arriving after a newer one changes nothing and delivers nothing', async () => {
    const f = feed();
    const { w, seen } = follow(f);
    const newer = rec('u1', ['New', 'Executing', 'Done'], 5);
    f.push([newer], at(5));
    f.push([rec('u1', ['New', 'Executing'], 3)], at(5));
    await w.poll();
    await w.poll();
    expect(w.records.get('u1')).toEqual(newer);
    expect(seen).toEqual(['u1:New', 'u1:Executing', 'u1:Done']);
  });

  it('a newer write that adds no state (e.g. output) replaces the record without a callback', async () => {
    const f = feed();
    const { w, seen } = follow(f);
    f.push([rec('u1', ['New', 'Done'], 2)], at(2));
    f.push([{ ...rec('u1', ['New', 'Done'], 4), stdout: 'hi' } as R], at(4));
    await w.poll();
    await w.poll();
    expect((w.records.get('u1') as R & { stdout?: string }).stdout).toBe('hi');
    expect(seen).toEqual(['u1:New', 'u1:Done']);
  });

  it('seeded records are delivered once, and not again when the feed shows them', async () => {
    const f = feed();
    const { w, seen } = follow(f);
    const u1 = rec('u1', ['New'], 1);
    w.seed([u1]);
    w.seed([u1]);
    expect(seen).toEqual(['u1:New']);
    f.push([u1], at(1));
    await w.poll();
    expect(seen).toEqual(['u1:New']);
  });

  it('follows every page of a poll, and asks again from its cursor less the overlap', async () => {
    const f = feed();
    const { w, seen } = follow(f);
    f.push([rec('u1', ['New'], 1)], at(1), 'page-2');
    f.push([rec('u2', ['New'], 2)], at(10));
    await w.poll();
    expect(seen).toEqual(['u1:New', 'u2:New']);
    await w.poll();
    expect(f.asked.at(-1)).toBe(at(8)); // cursor at 10 s, minus 2 s of overlap
  });

  it('a callback that throws does not stop the others or the poller', async () => {
    const f = feed();
    const { w, seen } = follow(f);
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    stops.push(
      w.register(() => {
        throw new Error('user bug');
      }),
    );
    f.push([rec('u1', ['New', 'Done'], 2)], at(2));
    await w.poll();
    expect(seen).toEqual(['u1:New', 'u1:Done']);
    expect(error).toHaveBeenCalledTimes(2);
    f.push([rec('u2', ['New'], 3)], at(3));
    await w.poll();
    expect(seen).toEqual(['u1:New', 'u1:Done', 'u2:New']);
  });
});

describe('Watcher.wait', () => {
  it('returns as soon as the feed shows the wanted state', async () => {
    const f = feed();
    const w = new Watcher<S, R>(
      (since) => pages((next) => f.fetchPage(since, next)),
      ['Done', 'Failed'],
      rank,
      5,
      20,
    );
    f.push([rec('u1', ['New'], 1)], at(1));
    const waiting = w.wait(['u1'], ['Executing'], { timeoutMs: undefined }, 'wait u1');
    f.push([rec('u1', ['New', 'Executing'], 2)], at(2));
    const [r] = await waiting;
    expect(r?.state).toBe('Executing');
  });

  it('a wait on known records holds its polls for final states only, unless something wants less', async () => {
    const f = feed();
    const holds: (FeedHold | undefined)[] = [];
    const watcher = () =>
      new Watcher<S, R>(
        (since, hold) => {
          holds.push(hold);
          return pages((next) => f.fetchPage(since, next));
        },
        ['Done', 'Failed'],
        rank,
        5,
        20,
      );
    // A wait for Done alone: its polls are held until a record ends (until=final).
    const w = watcher();
    w.seed([rec('u1', ['New'], 1)]);
    const done = w.wait(['u1'], ['Done'], { timeoutMs: undefined }, 'wait u1');
    await vi.waitFor(() => expect(holds.some((h) => h?.final)).toBe(true), { timeout: 5_000 });
    f.push([rec('u1', ['New', 'Executing', 'Done'], 2)], at(2));
    expect((await done).map((r) => r.state)).toEqual(['Done']);
    w.close();
    // A wait for Executing: no hold of it may skip the states on the way.
    holds.length = 0;
    const v = watcher();
    v.seed([rec('u2', ['New'], 3)]);
    const executing = v.wait(['u2'], ['Executing'], { timeoutMs: undefined }, 'wait u2');
    await vi.waitFor(() => expect(holds.filter((h) => h).length).toBeGreaterThan(1), { timeout: 5_000 });
    f.push([rec('u2', ['New', 'Executing'], 4)], at(4));
    expect((await executing).map((r) => r.state)).toEqual(['Executing']);
    expect(holds.filter((h) => h?.final)).toEqual([]);
    v.close();
  });

  it('a callback or a wait for less than final, arriving during a final-only hold, gets a hold of its own at once', async () => {
    // A feed whose final-only holds last until the test lets them go, as a server's hold lasts until a
    // record ends; holds for every state answer what the test queued.
    const holds: { final: boolean; over: boolean }[] = [];
    let release = () => {};
    const released = new Promise<void>((r) => {
      release = r;
    });
    const watcher = (f: ReturnType<typeof feed>) =>
      new Watcher<S, R>(
        (since, hold) => {
          const h = { final: hold?.final === true, over: false };
          holds.push(h);
          return (async function* () {
            if (h.final) await released;
            yield* pages((next) => f.fetchPage(since, next));
            h.over = true;
          })();
        },
        ['Done', 'Failed'],
        rank,
        5,
        20,
      );
    const f = feed();
    const w = watcher(f);
    w.seed([rec('u1', ['New'], 1), rec('u2', ['New'], 1)]);
    const done = w.wait(['u1', 'u2'], ['Done'], { timeoutMs: undefined }, 'wait');
    await vi.waitFor(() => expect(holds.some((h) => h.final)).toBe(true), { timeout: 5_000 });
    // Act: u1 starts executing (the feed has it: a hold for every state would answer it now) and a
    // callback arrives while the final-only hold is out.
    f.push([rec('u1', ['New', 'Executing'], 2)], at(2));
    const seen: string[] = [];
    stops.push(w.register((r, state) => seen.push(`${r.uid}:${state}`)));
    // Assess: it hears of EXECUTING while the final-only hold is still out.
    await vi.waitFor(() => expect(seen).toEqual(['u1:Executing']), { timeout: 5_000 });
    expect(holds.filter((h) => h.final).every((h) => !h.over)).toBe(true);
    // The same for a wait for EXECUTING, on a watcher without callbacks.
    const g = feed();
    const v = watcher(g);
    v.seed([rec('u3', ['New'], 3)]);
    const finals = v.wait(['u3'], ['Done'], { timeoutMs: undefined }, 'wait u3 done');
    await vi.waitFor(() => expect(holds.filter((h) => h.final && !h.over)).toHaveLength(2), {
      timeout: 5_000,
    });
    g.push([rec('u3', ['New', 'Executing'], 4)], at(4));
    const executing = v.wait(['u3'], ['Executing'], { timeoutMs: undefined }, 'wait u3 executing');
    expect((await executing).map((r) => r.state)).toEqual(['Executing']);
    expect(holds.filter((h) => h.final).every((h) => !h.over)).toBe(true);
    // Let the holds go; the first waits end as their records do.
    f.push([rec('u1', ['New', 'Executing', 'Done'], 5), rec('u2', ['New', 'Done'], 5)], at(5));
    g.push([rec('u3', ['New', 'Executing', 'Done'], 5)], at(5));
    release();
    expect((await done).map((r) => r.state)).toEqual(['Done', 'Done']);
    expect((await finals).map((r) => r.state)).toEqual(['Done']);
    w.close();
    v.close();
  });

  it('a final state ends a wait for another state (the record will never move again)', async () => {
    const f = feed();
    const w = new Watcher<S, R>(
      (since) => pages((next) => f.fetchPage(since, next)),
      ['Done', 'Failed'],
      rank,
      5,
      20,
    );
    f.push([rec('u1', ['New', 'Failed'], 1)], at(1));
    const [r] = await w.wait(['u1'], ['Executing'], { timeoutMs: undefined }, 'wait u1');
    expect(r?.state).toBe('Failed');
  });

  it('times out naming each laggard with its state; an unknown uid is DoesNotExist', async () => {
    const f = feed();
    const w = new Watcher<S, R>(
      (since) => pages((next) => f.fetchPage(since, next)),
      ['Done', 'Failed'],
      rank,
      5,
      20,
    );
    f.push([rec('u1', ['New', 'Executing'], 1), rec('u2', ['New', 'Done'], 1)], at(1));
    const err = await w
      .wait(['u1', 'u2'], ['Done'], { timeoutMs: 50, throwOnTimeout: true }, 'waitUnits')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Timeout);
    expect((err as Error).message).toBe('waitUnits: not in [Done] after 0.05 s: u1=Executing');
    const unknown = await w
      .wait(['u1', 'u9'], ['Done'], { timeoutMs: 50, throwOnTimeout: true }, 'waitUnits')
      .catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(DoesNotExist);
    // The records are where the feed left them: the timeout, not a state change, ended the wait.
    expect(w.records.get('u1')?.state).toBe('Executing');
  });

  it('names at most ten laggards and counts the rest', async () => {
    const f = feed();
    const w = new Watcher<S, R>(
      (since) => pages((next) => f.fetchPage(since, next)),
      ['Done', 'Failed'],
      rank,
      5,
      20,
    );
    const uids = Array.from({ length: 13 }, (_, i) => `u${i}`);
    f.push(
      uids.map((u) => rec(u, ['New'], 1)),
      at(1),
    );
    const err = await w
      .wait(uids, ['Done'], { timeoutMs: 20, throwOnTimeout: true }, 'waitUnits')
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/u9=New and 3 more$/);
  });

  it('a client error from the feed (4xx) ends the wait with that error', async () => {
    const f = feed();
    const w = new Watcher<S, R>(
      (since) => pages((next) => f.fetchPage(since, next)),
      ['Done', 'Failed'],
      rank,
      5,
      20,
    );
    f.push([rec('u1', ['New'], 1)], at(1));
    const waiting = w.wait(['u1'], ['Done'], { timeoutMs: undefined }, 'wait u1').catch((e: unknown) => e);
    const gone = new DoesNotExist('session s1 does not exist');
    f.fail(gone);
    expect(await waiting).toBe(gone);
  });

  it('a server error (5xx) does not end the wait: it goes on once the feed answers again', async () => {
    const f = feed();
    const w = new Watcher<S, R>(
      (since) => pages((next) => f.fetchPage(since, next)),
      ['Done', 'Failed'],
      rank,
      5,
      20,
    );
    f.push([rec('u1', ['New'], 1)], at(1));
    const waiting = w.wait(['u1'], ['Done'], { timeoutMs: undefined }, 'wait u1');
    f.fail(new NoSuccess('throttled'));
    const failedPolls = f.asked.length;
    await vi.waitFor(() => expect(f.asked.length).toBeGreaterThan(failedPolls + 1), { timeout: 10_000 });
    f.fail(undefined);
    f.push([rec('u1', ['New', 'Done'], 2)], at(2));
    const [r] = await waiting;
    expect(r?.state).toBe('Done');
  });
});

describe('Watcher: the overlap in brief', () => {
  /** A feed that answers whole records, in brief those changed up to `known`, and records what it was asked. */
  function briefFeed(records: () => R[]) {
    const asked: { since?: string; known?: string }[] = [];
    const w = new Watcher<S, R>(
      (since, _hold, known) => {
        asked.push({ ...(since ? { since } : {}), ...(known ? { known } : {}) });
        const items = records().map((r): R | BriefRecord =>
          known !== undefined && r.changed <= known
            ? { uid: r.uid, changed: r.changed, entries: r.stateHistory.length, brief: true }
            : r,
        );
        const cursor =
          records()
            .map((r) => r.changed)
            .sort()
            .at(-1) ?? '';
        return pages(async () => ({ items, cursor }));
      },
      ['Done', 'Failed'],
      rank,
      5,
      20,
    );
    const seen: string[] = [];
    stops.push(w.register((r, state) => seen.push(`${r.uid}:${state}`)));
    return { w, seen, asked };
  }

  it('sends its cursor as `known`; briefs of records it holds as new are skipped, no read again', async () => {
    let records = [rec('u1', ['New'], 1)];
    const { w, seen, asked } = briefFeed(() => records);
    await w.poll();
    records = [rec('u1', ['New'], 1), rec('u2', ['New', 'Done'], 2)];
    await w.poll();
    expect(asked.at(-1)).toEqual({ since: at(-1), known: `${at(1)}#u1` });
    expect(asked).toHaveLength(2);
    expect(seen).toEqual(['u1:New', 'u2:New', 'u2:Done']);
  });

  it('a brief of a record it lacks (a write seen late, stamped before its cursor) reads the window whole once', async () => {
    // Prepare: u2 is read first; u1, stamped before it, becomes visible only later.
    let records = [rec('u2', ['New'], 2)];
    const { w, seen, asked } = briefFeed(() => records);
    await w.poll();
    records = [rec('u1', ['New', 'Executing'], 1), rec('u2', ['New'], 2)];
    // Act
    await w.poll();
    // Assess: the brief of u1 sent the watcher back for the whole window, and u1's states came once.
    expect(asked.slice(1)).toEqual([{ since: at(0), known: `${at(2)}#u2` }, { since: at(0) }]);
    expect(seen).toEqual(['u2:New', 'u1:New', 'u1:Executing']);
    expect(w.records.get('u1')?.state).toBe('Executing');
  });

  it('a brief of a record it holds with a shorter history (a clock that stamped it earlier) reads it whole', async () => {
    let records = [rec('u1', ['New'], 3)];
    const { w, seen } = briefFeed(() => records);
    await w.poll();
    // The next write of u1 carries an earlier stamp (another writer's clock) but a longer history.
    records = [rec('u1', ['New', 'Done'], 3)];
    await w.poll();
    expect(seen).toEqual(['u1:New', 'u1:Done']);
  });
});
