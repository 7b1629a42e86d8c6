/**
 * What a submission reads before its first write (functions/lib/units.ts `submitReads`), on the embedded
 * backend's store: the manager, and its pilots beside it when the client's `pilots` hint names exactly the
 * manager's (else after it, as before); the session's resource configs only for pilots created before their
 * unit limit was recorded on them. The records are made in the store directly: no pilot is launched.
 */
import { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Session } from '../client/index.ts';
import { sessionResources } from '../functions/lib/resources.ts';
import { store } from '../functions/lib/store.ts';
import { pilotsHint, submitReads, unitLimit } from '../functions/lib/units.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { ENV } from '../stacks/manifest.ts';

let backend: Backend;
let session: Session;

beforeAll(async () => {
  backend = await startBackend();
  session = await Session.create({ endpoint: backend.apiUrl, name: 'submit-reads' });
});
// The session is not closed: its pilots are records without executions, which a close would wait for.
afterAll(async () => {
  await backend?.close();
});
afterEach(() => {
  vi.restoreAllMocks();
});

const PD = { resource: 'local.localhost', runtime: 10, cores: 2 };

/** A round-robin manager with three pilots (records only), their uids in the manager's order. */
async function managerWithPilots(limits = true): Promise<{ umid: string; pids: string[] }> {
  const sid = session.uid;
  const pmgr = (await store().createPilotManager(sid)).uid;
  const registry = await sessionResources(sid);
  const pilots = await store().createPilots(
    sid,
    pmgr,
    [0, 1, 2].map(() => ({
      description: PD,
      ...(limits ? { unitLimit: unitLimit(registry, PD) } : {}),
    })),
  );
  const umid = (await store().createUnitManager(sid, 'round_robin')).uid;
  const m = await store().updateUnitManagerPilots(sid, umid, { add: pilots.map((p) => p.uid) });
  return { umid, pids: m.pilots };
}

describe('submitReads', () => {
  it("with the manager's pilots as the hint (any order): the manager and them in one read, in the manager's order", async () => {
    const { umid, pids } = await managerWithPilots();
    const both = vi.spyOn(store(), 'getUnitManagerWithPilots');
    const getPilots = vi.spyOn(store(), 'getPilots');
    const getManager = vi.spyOn(store(), 'getUnitManager');
    const configs = vi.spyOn(store(), 'listResourceConfigs');
    const reads = await submitReads(session.uid, umid, [...pids].reverse());
    expect(both).toHaveBeenCalledTimes(1);
    expect(getPilots).not.toHaveBeenCalled();
    expect(getManager).not.toHaveBeenCalled();
    expect(reads.livePilots.map((p) => p.uid)).toEqual(pids);
    // The limits were recorded with the pilots: the configs are not read.
    expect(configs).not.toHaveBeenCalled();
    expect(reads.limits.get(pids[0] as string)).toEqual({ cores: 2 });
  });

  it("a stale, unknown or missing hint reads the manager's own pilots after it", async () => {
    const { umid, pids } = await managerWithPilots();
    const getPilots = vi.spyOn(store(), 'getPilots');
    for (const hint of [pids.slice(0, 2), [pids[0] as string, pids[1] as string, 'pilot.9999'], undefined]) {
      getPilots.mockClear();
      const reads = await submitReads(session.uid, umid, hint);
      expect(reads.livePilots.map((p) => p.uid)).toEqual(pids);
      expect(getPilots.mock.calls.at(-1)?.[1]).toEqual(pids);
    }
  });

  it('pilots created before their unit limit was recorded: the configs are read, and the limit is the same', async () => {
    const { umid, pids } = await managerWithPilots(false);
    // The record of an older pilot: no unitLimit attribute (removed as it would never have been written).
    const raw = new DynamoDBClient({});
    await raw.send(
      new UpdateItemCommand({
        TableName: backend.env[ENV.table] as string,
        Key: { pk: { S: `${session.uid}#${pids[0]}` } },
        UpdateExpression: 'REMOVE unitLimit',
      }),
    );
    raw.destroy();
    const configs = vi.spyOn(store(), 'listResourceConfigs');
    const reads = await submitReads(session.uid, umid, pids);
    expect(configs).toHaveBeenCalledTimes(1);
    expect(reads.limits.get(pids[0] as string)).toEqual({ cores: 2 });
  });
});

describe('the submission route', () => {
  it('refuses a malformed `pilots` hint after the token check, naming it (400), and accepts none', async () => {
    expect(pilotsHint(undefined)).toBeUndefined();
    expect(pilotsHint(['pilot.0001'])).toEqual(['pilot.0001']);
    const { umid } = await managerWithPilots();
    const post = (token: string, body: unknown) =>
      fetch(`${backend.apiUrl}/sessions/${session.uid}/umgrs/${umid}/units`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const bad = { descriptions: [{ executable: '/bin/true' }], pilots: 'pilot.0000' };
    expect((await post(`${session.uid}~${'x'.repeat(43)}`, bad)).status).toBe(401);
    const r = await post(session.token, bad);
    expect(r.status).toBe(400);
    expect(JSON.stringify(await r.json())).toContain(
      'submitUnits.pilots: must be a list of at most 100 pilot uids',
    );
  });
});
