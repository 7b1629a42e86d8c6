/**
 * RP 0.22's own API tests (`src/radical/pilot/tests/api/test_{session,pilot_manager,pilot,unit_manager,
 * unit}.py` in radical-cybertools/radical.pilot), translated to Sortie's SDK on the embedded backend: the
 * same steps and the same assertions, one `it` per RP test. Where RP's test reads MongoDB, or names
 * something Sortie spells differently, the comment at that step says what stands in for it and why.
 *
 * RP's pilots on `localhost` ran their `runtime` (1 or 2 minutes) out and ended DONE; these tests do the
 * same, so a few of them take that long.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ACTIVE,
  CANCELED,
  Context,
  DONE,
  EXECUTING,
  FAILED,
  PilotManager,
  SCHED_DIRECT_SUBMISSION,
  Session,
  UnitManager,
} from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { killUnitProcesses } from './e2e.ts';

let backend: Backend;
const sessions: Session[] = [];
/** RP's tests used `/tmp/radical.pilot.sandbox.unittests`; one scratch root per run here. */
const SANDBOX = mkdtempSync(path.join(os.tmpdir(), 'radical.pilot.sandbox.unittests-'));
/** RP's `localhost` is the alias of `local.localhost` (its aliases file); Sortie names the resource itself. */
const LOCALHOST = 'local.localhost';
/** RP's 5 * 60 s waits, and the vitest bound of a test that waits for a pilot's 1-2 minute runtime. */
const FIVE_MIN = 5 * 60;
const LONG = 6 * 60_000;

beforeAll(async () => {
  backend = await startBackend();
});
afterEach(async () => {
  for (const s of sessions.splice(0)) {
    await s.close({ timeout: 30 }).catch(() => {});
    killUnitProcesses(s.uid);
  }
});
afterAll(async () => {
  await backend?.close();
  rmSync(SANDBOX, { recursive: true, force: true });
});

/** RP: `radical.pilot.Session(database_url=DBURL, database_name=DBNAME)`. */
async function newSession(): Promise<Session> {
  const s = await Session.create({ endpoint: backend.apiUrl });
  sessions.push(s);
  return s;
}

/** RP's ComputePilotDescription of these tests. */
const cpd = (runtime: number, extra: Record<string, unknown> = {}) => ({
  resource: LOCALHOST,
  cores: 1,
  runtime,
  sandbox: SANDBOX,
  cleanup: true,
  ...extra,
});

describe('test_session.py', () => {
  it('test__session_create', async () => {
    const created: Session[] = [];
    for (let i = 1; i < 4; i++) created.push(await newSession());
    // RP counted the session collections in MongoDB (4 including its meta collection); here: three
    // distinct sessions that each exist in the control plane.
    expect(new Set(created.map((s) => s.uid)).size).toBe(3);
    for (const s of created)
      expect((await Session.reconnect(s.uid, { endpoint: backend.apiUrl, token: s.token })).uid).toBe(s.uid);
  });

  it('test__session_reconnect', async () => {
    const ids: { uid: string; token: string }[] = [];
    for (let i = 1; i < 4; i++) {
      const s = await newSession();
      ids.push({ uid: s.uid, token: s.token });
    }
    for (const { uid, token } of ids) {
      const r = await Session.reconnect(uid, { endpoint: backend.apiUrl, token });
      expect(r.uid).toBe(uid);
    }
  });

  it('test__credentials_reconnect', async () => {
    const session = await newSession();
    // RP 0.22's SSHCredential with only user_id set is today's Context('ssh') with only a userId.
    const cred1 = new Context('ssh', { userId: 'tg802352' });
    await session.addContext(cred1);
    const cred2 = new Context('ssh', { userId: 'abcedesds' });
    await session.addContext(cred2);
    expect(session.listContexts()).toHaveLength(2);
    for (const c of session.listContexts())
      expect([cred1, cred2].map((x) => JSON.stringify(x))).toContain(JSON.stringify(c));
    // RP read the credentials back from MongoDB on reconnect. Sortie lists what it holds: one context per
    // resource key (both here are for every resource, so the last one added, which launches use), never
    // with a key or password (sealed before they are stored, never returned: README, Secrets).
    const session2 = await Session.reconnect(session.uid, { endpoint: backend.apiUrl, token: session.token });
    expect(session2.uid).toBe(session.uid);
    expect(session2.listContexts()).toEqual([
      expect.objectContaining({ type: 'ssh', userId: 'abcedesds', credential: 'none' }),
    ]);
  });
});

describe('test_pilot_manager.py', () => {
  it('test__pilotmanager_create', async () => {
    const session = await newSession();
    expect(await session.listPilotManagers()).toEqual([]);
    let pm = await PilotManager.create(session);
    expect(await session.listPilotManagers()).toEqual([pm.uid]);
    pm = await PilotManager.create(session);
    expect(await session.listPilotManagers()).toHaveLength(2);
  });

  it('test__pilotmanager_reconnect', async () => {
    const session = await newSession();
    const pm = await PilotManager.create(session);
    expect(await session.listPilotManagers()).toEqual([pm.uid]);
    const pmR = await session.getPilotManagers(pm.uid);
    expect(await session.listPilotManagers()).toEqual([pmR.uid]);
    expect(pm.uid).toBe(pmR.uid);
  });

  it('test__pilotmanager_list_pilots', async () => {
    const session = await newSession();
    const pm1 = await PilotManager.create(session);
    expect(await pm1.listPilots()).toHaveLength(0);
    const pm2 = await PilotManager.create(session);
    expect(await pm2.listPilots()).toHaveLength(0);
    for (let i = 0; i < 2; i++) {
      await pm1.submitPilots(cpd(1));
      await pm2.submitPilots(cpd(1));
    }
    expect(await pm1.listPilots()).toHaveLength(2);
    expect(await pm2.listPilots()).toHaveLength(2);
  });

  it('test__pilotmanager_list_pilots_after_reconnect', async () => {
    const session = await newSession();
    const pm1 = await PilotManager.create(session);
    expect(await pm1.listPilots()).toHaveLength(0);
    const pm2 = await PilotManager.create(session);
    expect(await pm2.listPilots()).toHaveLength(0);
    for (let i = 0; i < 2; i++) {
      await pm1.submitPilots(cpd(1));
      await pm2.submitPilots(cpd(1));
    }
    expect(await pm1.listPilots()).toHaveLength(2);
    expect(await pm2.listPilots()).toHaveLength(2);
    const pm1R = await session.getPilotManagers(pm1.uid);
    const pm2R = await session.getPilotManagers(pm2.uid);
    expect(await pm1R.listPilots()).toHaveLength(2);
    expect(await pm2R.listPilots()).toHaveLength(2);
  });

  it('test__pilotmanager_get_pilots', async () => {
    const session = await newSession();
    const pm1 = await PilotManager.create(session);
    expect(await pm1.listPilots()).toHaveLength(0);
    const pm2 = await PilotManager.create(session);
    expect(await pm2.listPilots()).toHaveLength(0);
    const pm1PilotUids: string[] = [];
    const pm2PilotUids: string[] = [];
    for (let i = 0; i < 2; i++) {
      pm1PilotUids.push((await pm1.submitPilots(cpd(1))).uid);
      pm2PilotUids.push((await pm2.submitPilots(cpd(1))).uid);
    }
    // RP's test indexes the result ([0]): a list in, a list out.
    for (const i of await pm1.listPilots()) {
      const pilot = await pm1.getPilots([i]);
      expect(pm1PilotUids).toContain(pilot[0]?.uid);
    }
    expect(await pm1.getPilots()).toHaveLength(2);
    for (const i of await pm2.listPilots()) {
      const pilot = await pm2.getPilots([i]);
      expect(pm2PilotUids).toContain(pilot[0]?.uid);
    }
    expect(await pm2.getPilots()).toHaveLength(2);
  });

  it(
    'test__pilotmanager_wait',
    async () => {
      const session = await newSession();
      const pmgr = await PilotManager.create(session);
      const pilots = await pmgr.submitPilots([cpd(1), cpd(2)]);
      await pmgr.waitPilots({ timeout: FIVE_MIN });
      for (const pilot of pilots) {
        expect(pilot.state).toBe(DONE);
        expect(pilot.stopTime).toBeDefined();
        expect(pilot.startTime).toBeDefined();
      }
    },
    LONG,
  );
});

describe('test_pilot.py', () => {
  it(
    'test__pilot_wait',
    async () => {
      const session = await newSession();
      const pm = await PilotManager.create(session);
      const pilot = await pm.submitPilots(cpd(1));
      expect(pilot).toBeDefined();
      expect(pilot.startTime).toBeUndefined();
      expect(pilot.stopTime).toBeUndefined();
      await pilot.wait({ state: [ACTIVE, FAILED], timeout: FIVE_MIN });
      expect(pilot.submissionTime).toBeDefined();
      expect(pilot.state).toBe(ACTIVE);
      expect(pilot.startTime).toBeDefined();
      expect(pilot.log).toBeDefined();
      // RP: "file://localhost<sandbox>/pilot-<uid>/"; Sortie's pilot sandbox is <sandbox>/<session>/<pilot>.
      expect(pilot.sandbox).toBe(path.join(SANDBOX, session.uid, pilot.uid));
      // The pilot should finish after it has reached its runtime.
      await pilot.wait({ timeout: FIVE_MIN });
      expect(pilot.state).toBe(DONE);
      expect(pilot.stopTime).toBeDefined();
    },
    LONG,
  );

  it('test__pilot_errors', async () => {
    const session = await newSession();
    const pm = await PilotManager.create(session);
    // RP launches this pilot and it FAILS; Sortie refuses a sandbox outside the resource's valid roots
    // already at submit (400 naming the field), so that no launcher ever tries to create it.
    await expect(pm.submitPilots(cpd(1, { sandbox: '/non-/existing/directory...' }))).rejects.toThrow(
      /sandbox: '\/non-\/existing\/directory\.\.\.' is not under one of the resource's valid roots/,
    );
    const pilot = await pm.submitPilots(cpd(1, { cores: 100000000000 })); // "This should fail - at least in 2014"
    await pilot.wait({ timeout: FIVE_MIN });
    expect(pilot.state).toBe(FAILED);
  });

  it(
    'test__pilot_cancel',
    async () => {
      const session = await newSession();
      const pm = await PilotManager.create(session);
      const pilot = await pm.submitPilots(cpd(1));
      expect(pilot).toBeDefined();
      expect(pilot.startTime).toBeUndefined();
      expect(pilot.stopTime).toBeUndefined();
      await pilot.wait({ state: [ACTIVE, FAILED], timeout: FIVE_MIN });
      expect(pilot.submissionTime).toBeDefined();
      expect(pilot.state).toBe(ACTIVE);
      expect(pilot.startTime).toBeDefined();
      await pilot.cancel();
      await pilot.wait({ timeout: FIVE_MIN });
      expect(pilot.state).toBe(CANCELED);
      expect(pilot.stopTime).toBeDefined();
    },
    LONG,
  );
});

describe('test_unit_manager.py', () => {
  it(
    'test__unitmanager_create',
    async () => {
      const session = await newSession();
      expect(await session.listUnitManagers()).toEqual([]);
      const um1 = await UnitManager.create(session, 'round_robin');
      expect(await session.listUnitManagers()).toEqual([um1.uid]);
      await UnitManager.create(session, 'round_robin');
      expect(await session.listUnitManagers()).toHaveLength(2);
    },
    LONG,
  );

  it('test__unitmanager_reconnect', async () => {
    const session = await newSession();
    const um = await UnitManager.create(session, 'round_robin');
    expect(await session.listUnitManagers()).toEqual([um.uid]);
    const umR = await session.getUnitManagers(um.uid);
    expect(await session.listUnitManagers()).toEqual([umR.uid]);
    expect(um.uid).toBe(umR.uid);
  });

  it('test__unitmanager_pilot_assoc', async () => {
    const session = await newSession();
    const pm = await PilotManager.create(session);
    const p1 = await pm.submitPilots(cpd(1));
    const um = await UnitManager.create(session, 'round_robin');
    expect(await um.listPilots()).toEqual([]);
    await um.addPilots(p1);
    expect(await um.listPilots()).toEqual([p1.uid]);
    // Adding the same pilot twice should be ignored.
    await um.addPilots(p1);
    expect(await um.listPilots()).toEqual([p1.uid]);
    await um.removePilots(p1.uid);
    expect(await um.listPilots()).toEqual([]);
    const pilotList = [];
    for (let x = 0; x < 2; x++) {
      const p = await pm.submitPilots(cpd(1));
      await um.addPilots(p);
      pilotList.push(p);
    }
    const pl = await um.listPilots();
    expect(pl).toHaveLength(2);
    for (const l of pilotList) {
      expect(pl).toContain(l.uid);
      await um.removePilots(l.uid);
    }
    expect(await um.listPilots()).toEqual([]);
  });
});

describe('test_unit.py', () => {
  it(
    'test__unit_wait',
    async () => {
      const session = await newSession();
      const pm = await PilotManager.create(session);
      const pilot = await pm.submitPilots(cpd(1));
      const um = await UnitManager.create(session, SCHED_DIRECT_SUBMISSION);
      await um.addPilots(pilot);
      const cu = await um.submitUnits({ cores: 1, executable: '/bin/sleep', arguments: ['10'] });
      expect(cu).toBeDefined();
      expect(cu.submissionTime).toBeDefined();
      expect(cu.startTime).toBeUndefined();
      await cu.wait({ state: [EXECUTING, FAILED], timeout: FIVE_MIN });
      expect(cu.state).toBe(EXECUTING);
      expect(cu.startTime).toBeDefined();
      await cu.wait({ timeout: FIVE_MIN });
      expect(cu.state).toBe(DONE);
      expect(cu.stopTime).toBeDefined();
    },
    LONG,
  );

  it(
    'test__unit_cancel',
    async () => {
      const session = await newSession();
      const pm = await PilotManager.create(session);
      const pilot = await pm.submitPilots(cpd(60));
      const um = await UnitManager.create(session, SCHED_DIRECT_SUBMISSION);
      await um.addPilots(pilot);
      // Wait until the pilot starts.
      await pm.waitPilots({ state: ACTIVE, timeout: 120 });
      const cu = await um.submitUnits({ cores: 1, executable: '/bin/sleep', arguments: ['30'] });
      expect(cu).toBeDefined();
      expect(cu.submissionTime).toBeDefined();
      // Make sure it is running.
      await cu.wait({ state: EXECUTING, timeout: 60 });
      expect(cu.state).toBe(EXECUTING);
      expect(cu.startTime).toBeDefined();
      await cu.cancel();
      await cu.wait({ timeout: 60 });
      expect(cu.state).toBe(CANCELED);
      expect(cu.stopTime).toBeDefined();
    },
    LONG,
  );

  it(
    'test__unit_cancel_um',
    async () => {
      const session = await newSession();
      const pm = await PilotManager.create(session);
      const pilot = await pm.submitPilots(cpd(60));
      const um = await UnitManager.create(session, SCHED_DIRECT_SUBMISSION);
      await um.addPilots(pilot);
      await pm.waitPilots({ state: ACTIVE, timeout: 240 });
      const cu = await um.submitUnits({ cores: 1, executable: '/bin/sleep', arguments: ['60'] });
      expect(cu).toBeDefined();
      expect(cu.submissionTime).toBeDefined();
      await cu.wait({ state: EXECUTING, timeout: 60 });
      expect(cu.state).toBe(EXECUTING);
      expect(cu.startTime).toBeDefined();
      // Cancel through the unit manager, by a single id (RP: `um.cancel_units(cu.uid)`).
      await um.cancelUnits(cu.uid);
      await cu.wait({ timeout: 60 });
      expect(cu.state).toBe(CANCELED);
      expect(cu.stopTime).toBeDefined();
    },
    LONG,
  );
});
