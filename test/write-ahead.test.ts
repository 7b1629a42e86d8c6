/**
 * The write-ahead of unit starts, piece by piece: the agent's batching (agent/write-ahead.ts) and what
 * `POST /agent/started` does to the store (functions/callbacks/reports.ts planStarts/startedOf, on
 * dynalite through the same guarded writes the route makes). The end-to-end proof that no unit runs
 * twice is test/exactly-once.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AgentApi, UnitReport } from '../agent/api.ts';
import { Reporter } from '../agent/reporter.ts';
import { WriteAhead } from '../agent/write-ahead.ts';
import type { ComputeUnitDescription } from '../core/descriptions.ts';
import { sweepTarget, UnitState } from '../core/states.ts';
import type { StartReport } from '../core/wire.ts';
import { parseStarts, planRounds, planStarts, startedOf } from '../functions/callbacks/reports.ts';
import { type LocalDynamoDb, localClientConfig, startDynalite } from '../local/dynamodb.ts';
import { createTable, Store } from '../store/index.ts';

const start = (uid: string): StartReport => ({
  uid,
  lease: 'lease-a',
  time: '2030-01-01T00:00:00.000Z',
  sandbox: `/sb/${uid}`,
});

describe('WriteAhead (agent)', () => {
  /** An agent API that answers what `accept` says and records every request; `gate` holds answers back. */
  function api(accept: (uid: string) => boolean) {
    const calls: string[][] = [];
    let release: () => void = () => {};
    let gate: Promise<void> | undefined;
    return {
      calls,
      hold: () => {
        gate = new Promise((r) => {
          release = r;
        });
      },
      release: () => release(),
      started: async (starts: StartReport[]) => {
        calls.push(starts.map((s) => s.uid));
        await gate;
        return { started: starts.map((s) => s.uid).filter(accept) };
      },
    };
  }

  it('sends the starts of one scheduling pass in one request and answers each unit', async () => {
    const a = api((uid) => uid !== 'u2');
    const wa = new WriteAhead(a);
    const answers = await Promise.all(['u0', 'u1', 'u2', 'u3'].map((u) => wa.start(start(u))));
    expect(a.calls).toEqual([['u0', 'u1', 'u2', 'u3']]);
    expect(answers).toEqual([true, true, false, true]);
    expect(wa.refused).toBe(1);
  });

  it('starts asked for while a request is in flight go together in the next one', async () => {
    const a = api(() => true);
    const wa = new WriteAhead(a);
    a.hold();
    const first = wa.start(start('u0'));
    await new Promise((r) => setImmediate(r));
    expect(a.calls).toEqual([['u0']]);
    const later = [wa.start(start('u1')), wa.start(start('u2'))];
    await new Promise((r) => setImmediate(r));
    expect(a.calls).toHaveLength(1); // still waiting for the first answer
    a.release();
    expect(await Promise.all([first, ...later])).toEqual([true, true, true]);
    expect(a.calls).toEqual([['u0'], ['u1', 'u2']]);
    expect(wa.requests).toBe(2);
  });

  it('a request that fails rejects every start in it (none is spawned)', async () => {
    const wa = new WriteAhead({ started: () => Promise.reject(new Error('control plane gone')) });
    const outs = await Promise.allSettled([wa.start(start('u0')), wa.start(start('u1'))]);
    expect(outs.map((o) => o.status)).toEqual(['rejected', 'rejected']);
  });
});

describe('WriteAhead carries pending state reports (agent/reporter.ts lend)', () => {
  const done = (uid: string) => ({
    uid,
    state: 'Done' as const,
    time: '2030-01-01T00:00:01.000Z',
    exitCode: 0,
  });

  /**
   * A reporter that has just sent (its clock stands still), as at steady state: an end is then held for
   * the batch interval rather than sent at once, which is when a start can carry it.
   */
  async function busyReporter(p: ReturnType<typeof plane>, intervalMs = 60_000) {
    const reporter = new Reporter(p as unknown as AgentApi, intervalMs, 500, undefined, () => 0);
    reporter.report(done('before'));
    await reporter.flush();
    p.log.length = 0;
    return reporter;
  }

  /** A control plane that records both routes; `fail` makes `/agent/started` fail once. */
  function plane() {
    const log: { route: string; starts?: string[]; updates?: string[] }[] = [];
    let fail = false;
    return {
      log,
      failNext: () => {
        fail = true;
      },
      started: async (starts: StartReport[], updates?: UnitReport[]) => {
        log.push({
          route: 'started',
          starts: starts.map((s) => s.uid),
          updates: updates?.map((u) => u.uid) ?? [],
        });
        if (fail) {
          fail = false;
          throw new Error('control plane gone');
        }
        return { started: starts.map((s) => s.uid), applied: updates?.length ?? 0, refused: 0 };
      },
      states: async (updates: UnitReport[]) => {
        log.push({ route: 'states', updates: updates.map((u) => u.uid) });
        return { applied: updates.length, refused: 0 };
      },
    };
  }

  it('the ends pending when a start goes out travel in the same request, once', async () => {
    const p = plane();
    const reporter = await busyReporter(p);
    const wa = new WriteAhead(p, reporter);
    reporter.report(done('u0'));
    reporter.report(done('u1'));
    expect(await wa.start(start('u2'))).toBe(true);
    await reporter.close();
    expect(p.log).toEqual([{ route: 'started', starts: ['u2'], updates: ['u0', 'u1'] }]);
    expect(reporter.sent).toBe(3);
  });

  it("a unit's EXECUTING made less than an interval ago waits for its end; with its end it goes at once", async () => {
    const p = plane();
    let now = 0;
    const reporter = new Reporter(p as unknown as AgentApi, 100, 500, undefined, () => now);
    reporter.report(done('before'));
    await reporter.flush();
    p.log.length = 0;
    const executing = (uid: string) => ({
      uid,
      state: 'Executing' as const,
      time: '2030-01-01T00:00:00.000Z',
    });
    const wa = new WriteAhead(p, reporter);
    reporter.report(executing('old'));
    now = 110;
    reporter.report(executing('young'));
    expect(await wa.arm({ uid: 'u9', lease: 'lease-a' })).toBe(false); // this plane arms nothing
    now = 120;
    reporter.report(done('old'));
    reporter.report(done('young'));
    now = 150;
    expect(await wa.start(start('u2'))).toBe(true);
    await reporter.close();
    // The young EXECUTING stayed off the arm's request; once its end was pending too (an armed unit's
    // EXECUTING is reported with its end), the pair rode the next request, in order, for one write.
    expect(p.log).toEqual([
      { route: 'started', starts: [], updates: ['old'] },
      { route: 'started', starts: ['u2'], updates: ['young', 'old', 'young'] },
    ]);
  });

  it('reports lent to a request that fails are kept and sent again by the reporter', async () => {
    const p = plane();
    const reporter = await busyReporter(p);
    const wa = new WriteAhead(p, reporter);
    reporter.report(done('u0'));
    p.failNext();
    await expect(wa.start(start('u1'))).rejects.toThrow(/control plane gone/);
    await reporter.close();
    expect(p.log).toEqual([
      { route: 'started', starts: ['u1'], updates: ['u0'] },
      { route: 'states', updates: ['u0'] },
    ]);
    expect(reporter.sent).toBe(2);
  });

  it('reports handed back by a failed request go out on the reporter timer, no flush asked', async () => {
    const p = plane();
    const reporter = await busyReporter(p, 10);
    const wa = new WriteAhead(p, reporter);
    reporter.report(done('u0'));
    p.failNext();
    await expect(wa.start(start('u1'))).rejects.toThrow(/control plane gone/);
    await vi.waitFor(() => expect(p.log).toContainEqual({ route: 'states', updates: ['u0'] }), {
      timeout: 10_000,
    });
    expect(reporter.sent).toBe(2);
    await reporter.close();
  });

  it('while the reporter has a call of its own in flight, a start carries nothing (order per unit kept)', async () => {
    const p = plane();
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    const states = p.states;
    p.states = async (u) => {
      await held;
      return states(u);
    };
    const reporter = new Reporter(p as unknown as AgentApi, 60_000);
    const wa = new WriteAhead(p, reporter);
    reporter.report(done('u0'));
    const flushing = reporter.flush();
    reporter.report(done('u1'));
    expect(await wa.start(start('u2'))).toBe(true);
    release();
    await flushing;
    await reporter.close();
    expect(p.log).toEqual([
      { route: 'started', starts: ['u2'], updates: [] },
      { route: 'states', updates: ['u0'] },
      { route: 'states', updates: ['u1'] },
    ]);
  });
});

describe('parseStarts', () => {
  it('names the field and the value it refuses', () => {
    expect(() => parseStarts('x')).toThrow(/started\.starts: must be a list/);
    expect(() => parseStarts([{ uid: 'unit.000001', time: '2030-01-01T00:00:00Z' }])).toThrow(
      /started\.starts\[0\]\.lease: needs the lease the unit was pulled under, got null/,
    );
    expect(() => parseStarts([{ time: 'x' }])).toThrow(
      /started\.starts\[0\]: needs a uid, got \{"time":"x"\}/,
    );
    expect(() => parseStarts([{ uid: 'u', lease: 'l', time: 'soon' }])).toThrow(
      /started\.starts\[0\]\.time: wrong type, got "soon"/,
    );
    expect(parseStarts([start('u')])).toEqual([start('u')]);
  });
});

describe('POST /agent/started on the store (dynalite)', () => {
  let engine: LocalDynamoDb;
  let client: DynamoDBClient;
  const tableName = `sortie-test-${randomUUID()}`;
  const UD: ComputeUnitDescription = { executable: '/bin/true', cores: 1 };
  const P = 'pilot.0000';

  beforeAll(async () => {
    engine = await startDynalite();
    client = new DynamoDBClient(localClientConfig(engine.endpoint));
    await createTable(client, tableName);
  });
  afterAll(async () => {
    client?.destroy();
    await engine?.close();
  });

  it('moves only its own SCHEDULING units to EXECUTING, answers a retry the same, refuses the rest', async () => {
    // Prepare: two claimed units of this pilot, one cancelled meanwhile, one rescheduled to another pilot,
    // one whose lease was returned and which another pull (lease-b) has claimed since.
    const store = new Store({ tableName, client });
    const { sessionId: sid } = await store.createSession({ tokenHash: 'h' });
    const umgr = (await store.createUnitManager(sid, 'round_robin')).uid;
    const units = await store.createUnits(sid, umgr, [
      { description: UD, state: 'Scheduling', pilot: P },
      { description: UD, state: 'Scheduling', pilot: P },
      { description: UD, state: 'Canceled', pilot: P },
      { description: UD, state: 'Scheduling', pilot: 'pilot.0001' },
      { description: UD, state: 'Scheduling', pilot: P },
    ]);
    const leases = ['lease-a', 'lease-a', 'lease-a', 'lease-a', 'lease-b'];
    for (const [i, u] of units.entries())
      await store.patchUnit(sid, u.uid, { lease: leases[i] as string, leaseUntil: Date.now() + 60_000 });
    const starts = units.map((u) => start(u.uid));
    const [u0, u1, u2, u3, u4] = units.map((u) => u.uid) as [string, string, string, string, string];
    const apply = async () => startedOf(starts, await store.transitionUnits(sid, planStarts(starts, P)), P);
    // Act
    const before = store.requests.UpdateItem ?? 0;
    const started = await apply();
    const writes = (store.requests.UpdateItem ?? 0) - before;
    const retried = await apply();
    // Assess: one write per unit, the record says EXECUTING with the start's facts before any spawn.
    expect(started).toEqual([u0, u1]);
    expect(retried).toEqual([u0, u1]);
    // Two moved, three refused by their guard: at most one write attempt per unit.
    expect(writes).toBeLessThanOrEqual(starts.length);
    const after = await store.getUnits(sid, [u0, u2, u3, u4]);
    expect(after.map((u) => u.state)).toEqual(['Executing', 'Canceled', 'Scheduling', 'Scheduling']);
    expect(after[0]).toMatchObject({ started: starts[0]?.time, sandbox: `/sb/${u0}` });
    // A sweep now fails it (its work may have begun) instead of running it again elsewhere.
    expect(sweepTarget(UnitState.EXECUTING, false)).toBe(UnitState.FAILED);
    // The end is the one next write: a lone DONE report, applied in a single round.
    const rounds = planRounds([{ uid: u0, state: 'Done', time: '2030-01-01T00:00:01.000Z', exitCode: 0 }], P);
    expect(rounds).toHaveLength(1);
    const [out] = await store.transitionUnits(sid, rounds[0] ?? []);
    expect(out?.ok).toBe(true);
    const [done] = await store.getUnits(sid, [u0]);
    expect(done?.stateHistory.map((h) => h.state).filter((s) => s === 'Executing')).toHaveLength(1);
    expect(done?.state).toBe('Done');
  });
});
