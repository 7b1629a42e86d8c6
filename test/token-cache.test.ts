/**
 * Token checks from records read shortly before (store/record-cache.ts, functions/lib/auth.ts): the cache
 * alone (pure), the store on dynalite (its own writes drop an entry at once; another store's writes are
 * seen after the allowed age), and the embedded backend (per-unit routes stop reading their session and
 * pilot per request; what a token may do is still decided by the record and by the guarded writes).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PilotManager, PilotState, Session, UnitManager, UnitState } from '../client/index.ts';
import { awsRequests } from '../functions/lib/aws.ts';
import { hashSecret, pilotSecret } from '../functions/lib/secrets.ts';
import { store } from '../functions/lib/store.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { type LocalDynamoDb, localClientConfig, startDynalite } from '../local/dynamodb.ts';
import { ENV } from '../stacks/manifest.ts';
import { writtenKeys } from '../store/db.ts';
import { createTable, Store } from '../store/index.ts';
import { RecordCache } from '../store/record-cache.ts';
import { killUnitProcesses } from './e2e.ts';

/** A promise and its resolve, to hold a read open across a write. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve: (v: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('RecordCache (pure)', () => {
  it('answers a record read at most maxAgeMs ago without reading; older, it reads again', async () => {
    let now = 0;
    const cache = new RecordCache(10, () => now);
    let reads = 0;
    const read = async () => ++reads;
    expect(await cache.get('k', 100, read)).toBe(1);
    now = 100;
    expect(await cache.get('k', 100, read)).toBe(1);
    now = 101;
    expect(await cache.get('k', 100, read)).toBe(2);
    // maxAgeMs 0 always reads.
    expect(await cache.get('k', 0, read)).toBe(3);
  });

  it("a write of the key drops its entry; other keys' writes do not", async () => {
    const cache = new RecordCache(10, () => 0);
    let reads = 0;
    const read = async () => ++reads;
    await cache.get('a', 1_000, read);
    await cache.get('b', 1_000, read);
    cache.written(['b']);
    expect(await cache.get('a', 1_000, read)).toBe(1);
    expect(await cache.get('b', 1_000, read)).toBe(3);
  });

  it('a read that overlapped a write of its key is answered but not kept', async () => {
    const cache = new RecordCache(10, () => 0);
    const slow = deferred<string>();
    const first = cache.get('k', 1_000, () => slow.promise);
    cache.written(['k']); // the write lands while the read is out: the read may hold the old record
    slow.resolve('old');
    expect(await first).toBe('old');
    expect(await cache.get('k', 1_000, async () => 'new')).toBe('new');
    expect(await cache.get('k', 1_000, async () => 'newer')).toBe('new');
  });

  it('keeps at most maxEntries, dropping the least recently read first', async () => {
    const cache = new RecordCache(2, () => 0);
    for (const k of ['a', 'b', 'c']) await cache.get(k, 1_000, async () => k);
    expect(cache.size).toBe(2);
    expect(await cache.get('a', 1_000, async () => 'a again')).toBe('a again');
    expect(await cache.get('c', 1_000, async () => 'c again')).toBe('c');
  });

  it('finds the keys every kind of write names, and none for reads', () => {
    expect(writtenKeys('PutItem', { Item: { pk: 'p', x: 1 } })).toEqual(['p']);
    expect(writtenKeys('UpdateItem', { Key: { pk: 'u' } })).toEqual(['u']);
    expect(writtenKeys('DeleteItem', { Key: { pk: 'd' } })).toEqual(['d']);
    expect(
      writtenKeys('BatchWriteItem', {
        RequestItems: {
          t: [{ PutRequest: { Item: { pk: 'b1' } } }, { DeleteRequest: { Key: { pk: 'b2' } } }],
        },
      }),
    ).toEqual(['b1', 'b2']);
    expect(writtenKeys('GetItem', { Key: { pk: 'g' } })).toEqual([]);
    expect(writtenKeys('BatchGetItem', { RequestItems: { t: { Keys: [{ pk: 'g' }] } } })).toEqual([]);
  });
});

describe('the store: cached token records on dynalite', () => {
  let db: LocalDynamoDb;
  let client: DynamoDBClient;
  const tableName = `token-cache-${randomUUID().slice(0, 8)}`;
  let now = Date.parse('2030-01-01T00:00:00.000Z');
  const clock = () => new Date(now);

  beforeAll(async () => {
    db = await startDynalite();
    client = new DynamoDBClient(localClientConfig(db.endpoint));
    await createTable(client, tableName);
  });
  afterAll(async () => {
    client.destroy();
    await db.close();
  });

  it("a pilot is read once while fresh; the store's own write is seen at once, another store's after maxAgeMs", async () => {
    // Prepare: two stores on one table, as two Lambda containers.
    const mine = new Store({ tableName, client, now: clock });
    const other = new Store({ tableName, client, now: clock });
    const { sessionId: sid } = await mine.createSession({ tokenHash: 'h' });
    const pmgr = (await mine.createPilotManager(sid)).uid;
    const [p] = await mine.createPilots(sid, pmgr, [
      { description: { resource: 'local.localhost', runtime: 10, cores: 1 } },
    ]);
    const pid = p?.uid as string;
    const fresh = { maxAgeMs: 1_000 };
    await mine.getPilot(sid, pid, fresh);
    const reads0 = mine.requests.BatchGetItem ?? 0;
    // Act + assess: cached reads, then this store's own patch, seen by the next read.
    for (let i = 0; i < 5; i++) await mine.getPilot(sid, pid, fresh);
    expect((mine.requests.BatchGetItem ?? 0) - reads0).toBe(0);
    await mine.patchPilot(sid, pid, { appendLog: ['mine'] });
    expect((await mine.getPilot(sid, pid, fresh)).log.at(-1)).toBe('mine');
    // Another store's write: the cached record answers until it is maxAgeMs old, then the read shows it.
    await other.patchPilot(sid, pid, { appendLog: ['other'] });
    expect((await mine.getPilot(sid, pid, fresh)).log.at(-1)).toBe('mine');
    now += 1_001;
    expect((await mine.getPilot(sid, pid, fresh)).log.at(-1)).toBe('other');
    // Without maxAgeMs the store always reads.
    const reads1 = mine.requests.BatchGetItem ?? 0;
    await mine.getPilot(sid, pid);
    expect((mine.requests.BatchGetItem ?? 0) - reads1).toBe(1);
  });

  it("a session's uid reservations keep it cached; its close drops it", async () => {
    const store = new Store({ tableName, client, now: clock });
    const { sessionId: sid } = await store.createSession({ tokenHash: 'h' });
    const fresh = { maxAgeMs: 1_000 };
    await store.getSession(sid, fresh);
    const reads0 = store.requests.GetItem ?? 0;
    await store.reserveIds(sid, 'unit', 3);
    expect((await store.getSession(sid, fresh)).state).toBe('open');
    expect((store.requests.GetItem ?? 0) - reads0).toBe(0);
    await store.closeSession(sid);
    expect((await store.getSession(sid, fresh)).state).toBe('closed');
    expect((store.requests.GetItem ?? 0) - reads0).toBe(1);
  });
});

describe('the embedded backend: per-unit routes check tokens without a read each', () => {
  let backend: Backend;
  let session: Session;
  let scratch: string;

  beforeAll(async () => {
    scratch = mkdtempSync(path.join(os.tmpdir(), 'sortie-token-cache-'));
    backend = await startBackend({ heartbeatSeconds: 300 });
    session = await Session.create({ endpoint: backend.apiUrl, name: 'token-cache' });
  });
  afterAll(async () => {
    await session?.close({ timeout: 20 }).catch(() => {});
    if (session) killUnitProcesses(session.uid);
    await backend?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  const reads = () => (awsRequests['DynamoDB.GetItem'] ?? 0) + (awsRequests['DynamoDB.BatchGetItem'] ?? 0);

  it('units submitted and waited for one by one: about two reads each (the manager and its pilots), not six', async () => {
    const pmgr = await PilotManager.create(session);
    const pilot = await pmgr.submitPilots({
      resource: 'local.localhost',
      runtime: 10,
      cores: 1,
      sandbox: scratch,
    });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const [warm] = await umgr.submitUnits([{ executable: '/bin/true' }]);
    await warm?.wait({ timeout: 60 });
    // Act: the unit's whole path — submit, pull, claim, report, the client's change feed.
    const n = 20;
    const reads0 = reads();
    for (let i = 0; i < n; i++) {
      const u = await umgr.submitUnits({ executable: '/bin/true' });
      await u.wait({ timeout: 60 });
      expect(u.state).toBe(UnitState.DONE);
    }
    // Assess: a read of the session per poll and submit and of the pilot per agent request came to about
    // six reads per unit; what is left is the submission's manager and pilots.
    expect((reads() - reads0) / n).toBeLessThan(3);
    await pmgr.cancelPilots(pilot.uid);
    await pilot.wait({ timeout: 60 });
    await umgr.close();
  }, 120_000);

  it("a pilot ended by another container: its agent's report within the cached second is refused by the unit's guard, then the token is 403", async () => {
    // Prepare: a pilot and a unit EXECUTING on it, as records (no agent), and the pilot's agent token.
    const sid = session.uid;
    const pmgr = (await store().createPilotManager(sid)).uid;
    const [p] = await store().createPilots(sid, pmgr, [
      { description: { resource: 'local.localhost', runtime: 10, cores: 1 } },
    ]);
    const pid = p?.uid as string;
    await store().transitionPilot(sid, pid, PilotState.ACTIVE, {
      secretHash: hashSecret(pilotSecret(sid, pid)),
    });
    const umid = (await store().createUnitManager(sid, 'direct_submission')).uid;
    const [u] = await store().createUnits(
      sid,
      umid,
      [
        {
          description: { executable: '/bin/true', cores: 1 },
          state: UnitState.PENDING_EXECUTION,
          pilot: pid,
        },
      ],
      true,
    );
    const uid = u?.uid as string;
    await store().transitionUnits(sid, [{ uid, target: UnitState.EXECUTING, expect: { pilot: pid } }]);
    const report = (state: string) =>
      fetch(`${backend.apiUrl}/agent/states`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${sid}~${pid}~${pilotSecret(sid, pid)}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({
          updates: state ? [{ uid, state, time: new Date().toISOString(), exitCode: 0 }] : [],
        }),
      });
    expect((await report('')).status).toBe(200); // this container now holds the pilot, Active
    // Act: another container ends the pilot and sweeps its unit (FAILED), then the agent reports DONE.
    const other = new Store({ tableName: backend.env[ENV.table] as string, client: new DynamoDBClient({}) });
    await other.transitionPilot(sid, pid, PilotState.FAILED);
    await other.transitionUnits(sid, [{ uid, target: UnitState.FAILED }]);
    const late = await report(UnitState.DONE);
    // Assess: answered from the cached pilot, but the unit's guarded write refused the report; the unit stays
    // FAILED; once the cached record is old, the token is refused outright.
    if (late.status === 200) expect(await late.json()).toMatchObject({ applied: 0, refused: 1 });
    else expect(late.status).toBe(403); // the second had passed already on a slow machine
    expect((await store().getUnits(sid, [uid]))[0]?.state).toBe(UnitState.FAILED);
    await vi.waitFor(async () => expect((await report('')).status).toBe(403), { timeout: 10_000 });
  });

  it('a session closed by another container refuses a submission though this one holds it open; a wrong secret stays 401', async () => {
    // Prepare: a session and manager of their own; a list through the API caches the session.
    const s = await Session.create({ endpoint: backend.apiUrl, name: 'token-cache-closed' });
    // Late binding: a submission needs no pilot, so only the session's state can refuse it.
    const umgr = await UnitManager.create(s, 'backfilling');
    const list = (token: string) =>
      fetch(`${backend.apiUrl}/sessions/${s.uid}/umgrs/${umgr.uid}/units`, {
        headers: { authorization: `Bearer ${token}` },
      });
    expect((await list(s.token)).status).toBe(200);
    const forged = `${s.uid}~${'x'.repeat(43)}`;
    expect((await list(forged)).status).toBe(401);
    // Act: close it through a store of its own (another container's write: this process's cache keeps it).
    const other = new Store({ tableName: backend.env[ENV.table] as string, client: new DynamoDBClient({}) });
    await other.closeSession(s.uid);
    const r = await fetch(`${backend.apiUrl}/sessions/${s.uid}/umgrs/${umgr.uid}/units`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ descriptions: [{ executable: '/bin/true' }] }),
    });
    // Assess: refused by the reservation's guard (409 IncorrectState, saying why; a fresh read would have
    // refused it as a closed session's token, 403), nothing created.
    expect(r.status).toBe(409);
    expect(JSON.stringify(await r.json())).toContain('closed');
    const page = (await (await list(s.token)).json()) as { items: unknown[] };
    expect(page.items).toEqual([]);
  });
});
