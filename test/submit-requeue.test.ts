/**
 * A submission whose first attempt died between writing its units and queueing them. The route settles
 * its answer once the units are written (functions/lib/idempotency.ts `settled`) and queues them after,
 * so a Lambda stopped at its timeout in between leaves units PENDING_EXECUTION in the table, an answer
 * `done`, and nothing in the pilot's queue. The SDK repeats the request with the same token; the repeat
 * must queue them again, and a unit queued twice must still run once.
 *
 * The dead attempt's durable state is made with the store's own calls (as test/idempotency.test.ts makes
 * a claim whose attempt died): a Lambda cannot be stopped between two awaits for real here.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ComputePilot, PilotManager, Session, UnitManager } from '../client/index.ts';
import { parseUnitDescriptions } from '../core/descriptions.ts';
import { PilotState, pendingState, UnitState } from '../core/states.ts';
import { store } from '../functions/lib/store.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { killUnitProcesses } from './e2e.ts';

const ROUTE = 'POST /sessions/{sid}/umgrs/{umid}/units';
const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

let backend: Backend;
let session: Session;
let pilot: ComputePilot;
const dir = mkdtempSync(path.join(os.tmpdir(), 'sortie-requeue-'));

beforeAll(async () => {
  backend = await startBackend();
  session = await Session.create({ endpoint: backend.apiUrl, name: 'submit-requeue' });
  const pmgr = await PilotManager.create(session);
  pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 5, cores: 2, sandbox: dir });
}, 60_000);

afterAll(async () => {
  try {
    await session?.close();
  } finally {
    if (session) killUnitProcesses(session.uid);
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

/** The units' record after the attempt that wrote them and settled their answer died before queueing them. */
async function diedBeforeQueueing(umid: string, token: string, body: { descriptions: object[] }) {
  const sid = session.uid;
  const key = `${sid}#${sha256(token)}`;
  const claim = await store().claimRequest(key, `${ROUTE} ${sha256(JSON.stringify(body))}`);
  if (!claim.claimed) throw new Error('test claim not made');
  const units = await store().createUnits(
    sid,
    umid,
    // Parsed as the route parses them (defaults filled in).
    parseUnitDescriptions(body.descriptions).map((description) => ({
      description,
      state: pendingState(description),
      pilot: pilot.uid,
    })),
  );
  // What the route saves for a repeat: the uids (handler.ts, the submission's replay).
  await store().settleRequest(
    key,
    claim.attempt,
    'done',
    units.map((u) => u.uid),
  );
  return units.map((u) => u.uid);
}

describe('a repeated submission queues the units its dead first attempt wrote', () => {
  it('the repeat answers the same uids, the units run, each once, with two repeats at once', async () => {
    // Prepare: a manager with the pilot, and three units written, answered and never queued.
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const ran = path.join(dir, 'ran.txt');
    const body = {
      descriptions: ['a', 'b', 'c'].map((x) => ({
        executable: '/bin/sh',
        arguments: ['-c', `echo ${x} >> ${ran}`],
      })),
    };
    const token = `tok_requeue_${randomUUID().replaceAll('-', '')}`;
    const uids = await diedBeforeQueueing(umgr.uid, token, body);
    const repeat = () =>
      fetch(`${backend.apiUrl}/sessions/${session.uid}/umgrs/${umgr.uid}/units`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${session.token}`,
          'content-type': 'application/json',
          'x-sortie-request-token': token,
        },
        body: JSON.stringify(body),
      });
    // Act: two repeats at once (each finds the units unclaimed and queues them), then wait for the units.
    const answers = await Promise.all([repeat(), repeat()]);
    const states = await umgr.waitUnits({ uids, timeout: 60, throwOnTimeout: true });
    // Assess: both repeats answered the first attempt's uids; every unit ran to DONE exactly once.
    for (const a of answers) {
      expect(a.status).toBe(200);
      const items = ((await a.json()) as { items: { uid: string }[] }).items;
      expect(items.map((u) => u.uid)).toEqual(uids);
    }
    expect(states).toEqual([UnitState.DONE, UnitState.DONE, UnitState.DONE]);
    expect(readFileSync(ran, 'utf8').trim().split('\n').sort()).toEqual(['a', 'b', 'c']);
    for (const u of await umgr.getUnits(uids))
      expect(u.stateHistory.filter((h) => h.state === UnitState.EXECUTING)).toHaveLength(1);
    umgr.close();
  }, 90_000);

  it('a unit that cannot be queued is FAILED, saying why; a repeat leaves it so', async () => {
    // Prepare: a pilot recorded without a queue (as if its queue were gone): sending to it fails.
    const sid = session.uid;
    const pmgr = await store().createPilotManager(sid);
    const [queueless] = await store().createPilots(sid, pmgr.uid, [
      { description: { resource: 'local.localhost', runtime: 5, cores: 1 } },
    ]);
    if (!queueless) throw new Error('test pilot not made');
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(queueless.uid);
    const token = `tok_noqueue_${randomUUID().replaceAll('-', '')}`;
    const submit = async () => {
      const r = await fetch(`${backend.apiUrl}/sessions/${sid}/umgrs/${umgr.uid}/units`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${session.token}`,
          'content-type': 'application/json',
          'x-sortie-request-token': token,
        },
        body: JSON.stringify({ descriptions: [{ executable: '/bin/true' }] }),
      });
      expect(r.status).toBe(200);
      return ((await r.json()) as { items: { uid: string; state: string; log: { message: string }[] }[] })
        .items;
    };
    try {
      // Act
      const [first] = await submit();
      const [again] = await submit();
      // Assess: FAILED with the reason, once; the repeat names the same unit, still FAILED.
      expect(first?.state).toBe(UnitState.FAILED);
      expect(JSON.stringify(first?.log)).toContain(`could not be queued for ${queueless.uid}`);
      expect(again?.uid).toBe(first?.uid);
      expect(again?.state).toBe(UnitState.FAILED);
      const [unit] = await store().getUnits(sid, [first?.uid as string]);
      expect(unit?.stateHistory.filter((h) => h.state === UnitState.FAILED)).toHaveLength(1);
    } finally {
      await store().transitionPilot(sid, queueless.uid, PilotState.FAILED);
      umgr.close();
    }
  }, 60_000);
});
