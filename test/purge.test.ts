/**
 * RP's `Session.close(cleanup=True)` deletes the session's records: here the close marks the session and
 * the reconciler purges it after the retention (core/purge.ts, store/purge.ts, functions/pilot/purge.ts).
 * On the embedded backend with real engines, its schedules off (the tests run the reconciler themselves)
 * and a retention of 0: a session that ran units on a pilot is purged down to its self-expiring quota
 * counters while a session created before it keeps every item; its token then gets a 4xx. A session closed
 * without cleanup, or within its retention, is left alone; a small budget spreads a purge over runs.
 */
import { readFileSync } from 'node:fs';
import { DynamoDBClient, paginateScan } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Context, PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { store } from '../functions/lib/store.ts';
import type { ReconcileReport } from '../functions/pilot/reconcile.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { invoke } from '../local/lambdas.ts';
import { ENV } from '../stacks/manifest.ts';
import { killUnitProcesses, until } from './e2e.ts';

/** The shipped `local.localhost` config, as written in resources/local.json. */
const localhost = (
  JSON.parse(readFileSync(new URL('../resources/local.json', import.meta.url), 'utf8')) as Record<
    string,
    Record<string, unknown>
  >
).localhost as Record<string, unknown>;

let backend: Backend;
const sessions: Session[] = [];

beforeAll(async () => {
  backend = await startBackend({ scheduleSeconds: 0, cleanupRetentionSeconds: 0, heartbeatSeconds: 5 });
});
afterAll(async () => {
  for (const s of sessions) {
    await s.close({ cleanup: false, timeout: 20 }).catch(() => {});
    killUnitProcesses(s.uid);
  }
  await backend?.close();
});

const reconcile = async () => (await invoke('reconcile', {})) as ReconcileReport;

/** Every item of the table whose pk is the session's or under it (a Scan: fine in a test, never in code). */
async function itemsOf(sid: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  const client = new DynamoDBClient({});
  for await (const page of paginateScan({ client }, { TableName: backend.env[ENV.table] }))
    for (const raw of page.Items ?? []) {
      const item = unmarshall(raw);
      const pk = String(item.pk);
      if (pk === sid || pk.startsWith(`${sid}#`)) out.push(item);
    }
  client.destroy();
  return out;
}

/** A raw API call with a session's token: the status only. */
async function call(method: string, route: string, token: string, body?: unknown): Promise<number> {
  const res = await fetch(`${backend.apiUrl}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Runs the reconciler until it reports the session's purge done; returns every run's entry for it. */
async function purgeUntilDone(sid: string) {
  const seen: { deleted: number; done: boolean }[] = [];
  await until(
    `purge of ${sid}`,
    async () => {
      const report = await reconcile();
      expect(report.purge.failed).toEqual([]);
      const mine = report.purge.purged.find((p) => p.sid === sid);
      if (mine) seen.push(mine);
      return mine?.done ? true : undefined;
    },
    60_000,
    100,
  );
  return seen;
}

/** An idle session with a unit manager, queued units and a context: what must survive another's purge. */
async function idleSession(name: string): Promise<Session> {
  const s = await Session.create({ endpoint: backend.apiUrl, name });
  sessions.push(s);
  const umgr = await UnitManager.create(s, 'backfilling');
  await umgr.submitUnits(Array.from({ length: 5 }, () => ({ executable: '/bin/true' })));
  await s.addContext(new Context('ssh', { userId: 'me', userPass: 'x' }));
  return s;
}

describe('close with cleanup: the reconciler purges the records', () => {
  it("deletes every record of a session that ran units, and nothing of another's", async () => {
    // Prepare: a bystander created first, then a session with two unit managers, a pilot, 50 units run
    // to DONE, a context and a resource config
    const other = await idleSession('purge-bystander');
    const otherBefore = (await itemsOf(other.uid)).map((i) => i.pk).sort();
    const session = await Session.create({ endpoint: backend.apiUrl, name: 'purge-me' });
    sessions.push(session);
    const pmgr = await PilotManager.create(session);
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
    const umgrs = [
      await UnitManager.create(session, 'round_robin'),
      await UnitManager.create(session, 'backfilling'),
    ];
    for (const umgr of umgrs) {
      await umgr.addPilots(pilot);
      await umgr.submitUnits(Array.from({ length: 25 }, () => ({ executable: '/bin/true' })));
    }
    for (const umgr of umgrs) {
      const states = await umgr.waitUnits({ timeout: 120 });
      expect(states.every((s) => s === UnitState.DONE)).toBe(true);
    }
    await session.addContext(new Context('ssh', { userId: 'me', userPass: 'x' }));
    await session.addResourceConfig({
      'purge.box': { ...localhost, description: 'purged with its session' },
    });
    expect((await itemsOf(session.uid)).length).toBeGreaterThan(50);

    // Act: close with cleanup (RP's default), then run the reconciler until it says the purge is done
    await session.close();
    const runs = await purgeUntilDone(session.uid);

    // Assess: nothing left but quota counters, which DynamoDB drops itself; the bystander is whole
    expect(runs.at(-1)?.done).toBe(true);
    const left = await itemsOf(session.uid);
    expect(left.filter((i) => !String(i.pk).includes('#quota#') || typeof i.expires !== 'number')).toEqual(
      [],
    );
    expect((await itemsOf(other.uid)).map((i) => i.pk).sort()).toEqual(otherBefore);
    const status = await call('GET', `/sessions/${session.uid}`, session.token);
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(500);
    expect(await call('POST', `/sessions/${session.uid}/close`, session.token, { cleanup: true })).toBe(
      status,
    );
    // The bystander's token still works.
    expect(await call('GET', `/sessions/${other.uid}`, other.token)).toBe(200);
  });

  it('leaves a session closed without cleanup, and one within its retention, whose mark a second close does not move', async () => {
    // Prepare
    const kept = await idleSession('purge-kept');
    const later = await idleSession('purge-later');
    await kept.close({ cleanup: false });
    const retention = process.env[ENV.cleanupRetentionSeconds];
    let purgeAt: string | undefined;
    try {
      process.env[ENV.cleanupRetentionSeconds] = '3600';
      await later.close();
      purgeAt = (await store().getSession(later.uid)).purgeAt;
      // A second close, under a longer retention, keeps the first mark.
      process.env[ENV.cleanupRetentionSeconds] = '7200';
      expect(await call('POST', `/sessions/${later.uid}/close`, later.token, { cleanup: true })).toBe(200);
    } finally {
      process.env[ENV.cleanupRetentionSeconds] = retention;
    }
    const before = [(await itemsOf(kept.uid)).length, (await itemsOf(later.uid)).length];

    // Act
    const report = await reconcile();

    // Assess
    // The first close's retention (an hour after its close), not the second's.
    const closed = (await store().getSession(later.uid)).closed ?? '';
    expect(Math.round((Date.parse(purgeAt ?? '') - Date.parse(closed)) / 60_000)).toBe(60);
    expect((await store().getSession(later.uid)).purgeAt).toBe(purgeAt);
    expect((await store().getSession(kept.uid)).purgeAt).toBeUndefined();
    const touched = [...report.purge.purged, ...report.purge.waiting].map((p) => p.sid);
    expect(touched).not.toContain(kept.uid);
    expect(touched).not.toContain(later.uid);
    expect([(await itemsOf(kept.uid)).length, (await itemsOf(later.uid)).length]).toEqual(before);
    expect(await call('GET', `/sessions/${kept.uid}`, kept.token)).toBe(200);
    expect(await call('GET', `/sessions/${later.uid}`, later.token)).toBe(200);
  });

  it('spreads a purge over several runs when the budget is small, and ends with nothing left', async () => {
    // Prepare: 40 queued units and their manager, a context; a budget of 10 records a run
    const session = await Session.create({ endpoint: backend.apiUrl, name: 'purge-budget' });
    sessions.push(session);
    const umgr = await UnitManager.create(session, 'backfilling');
    await umgr.submitUnits(Array.from({ length: 40 }, () => ({ executable: '/bin/true' })));
    await session.close();
    const budget = process.env[ENV.purgeBudgetItems];
    let runs: { deleted: number; done: boolean }[];
    try {
      process.env[ENV.purgeBudgetItems] = '10';
      // Act
      runs = await purgeUntilDone(session.uid);
    } finally {
      process.env[ENV.purgeBudgetItems] = budget;
    }
    // Assess
    expect(runs.length).toBeGreaterThanOrEqual(5);
    for (const r of runs) expect(r.deleted).toBeLessThanOrEqual(10);
    expect(runs.slice(0, -1).every((r) => !r.done)).toBe(true);
    expect(await itemsOf(session.uid)).toEqual([]);
  });
});
