/**
 * The SDK behaves like RP's, end to end on one embedded backend: handles stay current while their manager
 * is open, waits return the states when their time is up, one id in gives one result out, callbacks carry
 * their data and the WAIT_QUEUE_SIZE metric counts UNSCHEDULED units, unknown ids raise DoesNotExist, and a
 * script that closes its session exits by itself.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ACTIVE,
  BadParameter,
  CANCELED,
  COPY,
  type ComputeUnit,
  Context,
  CREATE_PARENTS,
  DONE,
  DoesNotExist,
  EXECUTING,
  IncorrectState,
  NEW,
  PENDING_LAUNCH,
  PilotManager,
  PilotState,
  SCHED_ROUND_ROBIN,
  SCHEDULING,
  Session,
  UNIT_STATE,
  UNSCHEDULED,
  UnitManager,
  UnitState,
  WAIT_QUEUE_SIZE,
} from '../client/index.ts';
import { unitModel } from '../core/states.ts';
import { store } from '../functions/lib/store.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { killUnitProcesses, until } from './e2e.ts';

let backend: Backend;
const sessions: Session[] = [];
const scratch = mkdtempSync(path.join(os.tmpdir(), 'sortie-sdk-'));

beforeAll(async () => {
  backend = await startBackend({ heartbeatSeconds: 5 });
});
afterEach(async () => {
  for (const s of sessions.splice(0)) {
    await s.close({ timeout: 20 }).catch(() => {});
    killUnitProcesses(s.uid);
  }
});
afterAll(async () => {
  await backend?.close();
  rmSync(scratch, { recursive: true, force: true });
});

async function open(name: string) {
  const session = await Session.create({ endpoint: backend.apiUrl, name });
  sessions.push(session);
  const pmgr = await PilotManager.create(session);
  return { session, pmgr };
}

const pd = (cores: number) => ({ resource: 'local.localhost', runtime: 10, cores });

describe('RP semantics of the SDK', () => {
  it('handles are current while their manager is open: state, exitCode and stdout move without a wait', async () => {
    const { session, pmgr } = await open('live');
    const pilot = await pmgr.submitPilots(pd(1));
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const unit = await umgr.submitUnits({ executable: '/bin/echo', arguments: ['live'] });
    // RP ports loop on the property; no wait, no refresh, no callback here.
    await until('unit DONE through its property', () => (unit.state === DONE ? true : undefined), 60_000);
    expect(unit.exitCode).toBe(0);
    expect(unit.stdout).toContain('live');
    await until(
      'pilot ACTIVE through its property',
      () => (pilot.state === ACTIVE ? true : undefined),
      30_000,
    );
    // History entries carry RP's timestamp beside the wire's time.
    for (const e of unit.stateHistory) {
      expect(e.timestamp).toBeInstanceOf(Date);
      expect(e.timestamp.toISOString()).toBe(e.time);
    }
    expect(unit.stateHistory.map((e) => e.state)).toContain(EXECUTING);
    expect(await unit.refresh()).toBe(unit);
    expect(await pilot.refresh()).toBe(pilot);
    expect(pilot.stateHistory[0]?.state).toBe(PENDING_LAUNCH);
  });

  it('handles from a reconnected session follow too, once their manager has read its feed', async () => {
    const { session, pmgr } = await open('live-reconnect');
    const pilot = await pmgr.submitPilots(pd(1));
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const unit = await umgr.submitUnits({ executable: '/bin/sleep', arguments: ['3'] });
    const again = await Session.reconnect(session.uid, { endpoint: backend.apiUrl, token: session.token });
    const umgr2 = await again.getUnitManagers(umgr.uid);
    expect(umgr2).not.toBe(umgr);
    const handle = await umgr2.getUnits(unit.uid);
    // Read before the unit could end, so only following can bring DONE.
    expect(handle.state).not.toBe(DONE);
    await until(
      'reconnected handle DONE through its property',
      () => (handle.state === DONE ? true : undefined),
      60_000,
    );
    await umgr2.close();
  });

  it('one id in, one result out; lists in, lists out; unknown ids raise DoesNotExist instead of hanging', async () => {
    const { session, pmgr } = await open('single');
    const pilot = await pmgr.submitPilots(pd(1));
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot.uid);
    const unit = await umgr.submitUnits({ executable: '/bin/true' });

    const one = await umgr.getUnits(unit.uid);
    expect(one).toBe(unit);
    expect(await umgr.getUnits([unit.uid])).toEqual([unit]);
    expect(await umgr.waitUnits({ uids: unit.uid, timeout: 60 })).toBe(DONE);
    expect(await umgr.waitUnits({ uids: [unit.uid], timeout: 60 })).toEqual([DONE]);
    expect(await pmgr.getPilots(pilot.uid)).toBe(pilot);
    expect(await pmgr.waitPilots({ uids: pilot.uid, state: ACTIVE, timeout: 30 })).toBe(ACTIVE);
    expect(await pmgr.waitPilots({ uids: [pilot.uid], state: ACTIVE, timeout: 30 })).toEqual([ACTIVE]);
    await expect(umgr.cancelUnits(unit.uid)).resolves.toBeUndefined(); // final: a no-op, not a split string
    expect(await session.getPilotManagers(pmgr.uid)).toBe(pmgr);
    expect(await session.getUnitManagers(umgr.uid)).toBe(umgr);
    expect(await session.getPilotManagers([pmgr.uid])).toEqual([pmgr]);

    await expect(umgr.waitUnits({ uids: ['unit.nope'] })).rejects.toThrow(DoesNotExist);
    await expect(umgr.waitUnits({ uids: ['unit.nope'] })).rejects.toThrow(/unit\.nope/);
    await expect(pmgr.waitPilots({ uids: ['12'] })).rejects.toThrow(DoesNotExist);
    await expect(umgr.getUnits('unit.nope')).rejects.toThrow(DoesNotExist);
    await expect(pmgr.getPilots('pilot.nope')).rejects.toThrow(DoesNotExist);
    await expect(session.getPilotManagers('pmgr.nope')).rejects.toThrow(DoesNotExist);
    await expect(session.getUnitManagers('umgr.nope')).rejects.toThrow(DoesNotExist);
  });

  it('waitUnits({ state: [EXECUTING, DONE] }) returns only once every unit got there (or further)', async () => {
    const { session, pmgr } = await open('wait-state');
    const pilot = await pmgr.submitPilots(pd(2));
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const units = await umgr.submitUnits(
      Array.from({ length: 4 }, () => ({ executable: '/bin/sleep', arguments: ['2'] })),
    );
    const states = await umgr.waitUnits({ state: [EXECUTING, DONE], timeout: 60 });
    expect(states).toHaveLength(4);
    for (const [i, s] of states.entries()) {
      expect(unitModel.order[s]).toBeGreaterThanOrEqual(unitModel.order.Executing);
      expect(units[i]?.stateHistory.map((e) => e.state)).toContain(EXECUTING);
    }
    // Two cores: two of the four sleeps could not have started at once, so the wait really waited.
    expect(await umgr.waitUnits({ timeout: 60 })).toEqual([DONE, DONE, DONE, DONE]);
  });

  it('callbacks get callbackData as their third argument on pilots, units and managers; unknown metric is refused', async () => {
    const { session, pmgr } = await open('callback-data');
    const seen: string[] = [];
    pmgr.registerCallback((p, s, d) => seen.push(`pmgr ${p.uid} ${s} ${String(d)}`), 'pm-data');
    const pilot = await pmgr.submitPilots(pd(1));
    pilot.registerCallback((p, s, d) => seen.push(`pilot ${p.uid} ${s} ${String(d)}`), 'p-data');
    const umgr = await UnitManager.create(session, SCHED_ROUND_ROBIN);
    await umgr.addPilots(pilot);
    umgr.registerCallback((u, s, d) => seen.push(`umgr ${u.uid} ${s} ${String(d)}`), UNIT_STATE, 'um-data');
    const unit = await umgr.submitUnits({ executable: '/bin/true' });
    unit.registerCallback((u, s, d) => seen.push(`unit ${u.uid} ${s} ${String(d)}`), 'u-data');
    await unit.wait({ timeout: 60 });
    await until(
      'the unit callback saw DONE',
      () => (seen.includes(`unit ${unit.uid} Done u-data`) ? true : undefined),
      10_000,
    );
    expect(seen).toContain(`pmgr ${pilot.uid} ${PilotState.ACTIVE} pm-data`);
    expect(seen).toContain(`pilot ${pilot.uid} ${PilotState.ACTIVE} p-data`);
    expect(seen).toContain(`umgr ${unit.uid} ${NEW} um-data`);
    expect(seen).toContain(`umgr ${unit.uid} ${DONE} um-data`);
    expect(() => umgr.registerCallback(() => {}, 'QUEUE_LENGTH' as typeof UNIT_STATE)).toThrow(BadParameter);
    expect(() => umgr.registerCallback(() => {}, 'QUEUE_LENGTH' as typeof UNIT_STATE)).toThrow(
      /QUEUE_LENGTH/,
    );
  });

  it('WAIT_QUEUE_SIZE fires with the number of UNSCHEDULED units whenever it changes', async () => {
    const { session, pmgr } = await open('queue-size');
    const [busy, spare] = await pmgr.submitPilots([pd(1), pd(1)]);
    if (!busy || !spare) throw new Error('two pilots expected');
    const umgr = await UnitManager.create(session, SCHED_ROUND_ROBIN);
    const sizes: number[] = [];
    const managers: unknown[] = [];
    umgr.registerCallback(
      (m, size, d) => {
        sizes.push(size);
        managers.push([m, d]);
      },
      WAIT_QUEUE_SIZE,
      'q',
    );
    await umgr.addPilots(busy);
    // One core: the first unit runs, the other three wait on the busy pilot.
    const units = await umgr.submitUnits(
      Array.from({ length: 4 }, () => ({ executable: '/bin/sleep', arguments: ['30'] })),
    );
    await units[0]?.wait({ state: EXECUTING, timeout: 60, throwOnTimeout: true });
    await umgr.addPilots(spare);
    // The busy pilot's end sends its waiting units through UNSCHEDULED to the spare pilot (RP's sweep).
    await busy.cancel();
    await busy.wait({ timeout: 30, throwOnTimeout: true });
    // The three waiting units may reach the client in separate feed pages (seen under CI load): the
    // queue can empty after the first before the others were swept, so wait for each of them.
    const waiting = units.slice(1) as ComputeUnit[];
    await until(
      'the three waiting units passed UNSCHEDULED and the queue emptied again',
      () =>
        sizes.length >= 2 &&
        sizes.at(-1) === 0 &&
        waiting.every((u) => u.stateHistory.some((e) => e.state === UNSCHEDULED) && u.state !== UNSCHEDULED)
          ? true
          : undefined,
      30_000,
    );
    expect(Math.max(...sizes)).toBeGreaterThanOrEqual(1);
    for (let i = 1; i < sizes.length; i++) expect(sizes[i]).not.toBe(sizes[i - 1]);
    expect(managers[0]).toEqual([umgr, 'q']);
    for (const u of waiting) expect(u.pilotId, u.uid).toBe(spare.uid);
  });

  it('commands the agent took are trimmed off the pilot at its next heartbeat; later cancels still arrive', async () => {
    const { session, pmgr } = await open('trim');
    const pilot = await pmgr.submitPilots(pd(2));
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const sleep = { executable: '/bin/sleep', arguments: ['30'] };
    const pilotItem = () => store().getPilot(session.uid, pilot.uid);
    for (let i = 1; i <= 2; i++) {
      const unit = await umgr.submitUnits(sleep);
      await unit.wait({ state: EXECUTING, timeout: 60, throwOnTimeout: true });
      await unit.cancel();
      expect(await unit.wait({ timeout: 30, throwOnTimeout: true })).toBe(CANCELED);
      // The agent took the command (the unit is CANCELED by its kill); a heartbeat (every ~1 s here) trims it.
      await until(
        `command ${i} trimmed`,
        async () => {
          const p = await pilotItem();
          return p.commands.length === 0 && p.commandsBase === i ? true : undefined;
        },
        30_000,
      );
    }
  });

  it('RP module surface: constants, schedulerDetails, umgr.getPilots(), asDict(), contexts with only a userId', async () => {
    expect([NEW, SCHEDULING, EXECUTING, DONE, CANCELED]).toEqual([
      UnitState.NEW,
      UnitState.SCHEDULING,
      UnitState.EXECUTING,
      UnitState.DONE,
      UnitState.CANCELED,
    ]);
    expect([COPY, CREATE_PARENTS]).toEqual(['Copy', 'CreateParents']);
    const { session, pmgr } = await open('surface');
    const pilot = await pmgr.submitPilots(pd(1));
    const umgr = await UnitManager.create(session, SCHED_ROUND_ROBIN);
    expect(umgr.schedulerDetails).toMatch(/^round_robin: /);
    await umgr.addPilots(pilot);
    expect(await umgr.getPilots()).toEqual([pilot]);
    expect(umgr.asDict()).toEqual({ uid: umgr.uid, session: session.uid, scheduler: 'round_robin' });
    expect(pmgr.asDict()).toEqual({ uid: pmgr.uid, session: session.uid });
    expect(session.asDict()).toMatchObject({ uid: session.uid, name: 'surface' });
    expect(JSON.stringify(session.asDict())).not.toContain(session.token);

    const bare = new Context('ssh', { userId: 'someone' });
    await session.addContext(bare);
    await session.addContext(new Context('userpass'));
    expect(session.listContexts()).toEqual([bare, expect.objectContaining({ type: 'userpass' })]);
  });

  it('listContexts() after reconnect: what the backend holds, per resource, never the secret', async () => {
    const { session } = await open('contexts');
    await session.addContext(new Context('ssh', { userId: 'someone' }));
    await session.addContext(
      new Context('userpass', { userId: 'me', userPass: 'pw-1234', resource: 'localhost' }),
    );
    const again = await Session.reconnect(session.uid, { endpoint: backend.apiUrl, token: session.token });
    const listed = again.listContexts();
    expect(listed).toHaveLength(2);
    expect(listed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'ssh', userId: 'someone', credential: 'none', resource: undefined }),
        // Stored under the key the alias stands for.
        expect.objectContaining({
          type: 'userpass',
          userId: 'me',
          credential: 'password',
          resource: 'local.localhost',
        }),
      ]),
    );
    expect(JSON.stringify(listed)).not.toContain('pw-1234');
    expect(listed.every((c) => c.userPass === undefined && c.userKey === undefined)).toBe(true);
  });

  it('a pilot whose SSH context has only a userId fails saying what credential to add', async () => {
    const { session, pmgr } = await open('userid-only');
    await session.addContext(new Context('ssh', { userId: 'someone' }));
    const pilot = await pmgr.submitPilots({ resource: 'local.ssh', runtime: 5, cores: 1 });
    expect(await pilot.wait({ timeout: 60, throwOnTimeout: true })).toBe(PilotState.FAILED);
    expect(pilot.log.join('\n')).toMatch(/only userId 'someone'.*generateKey/);
  });

  it('pmgr.close({ terminate }) cancels and waits for its pilots, then stops: no callback, no wait after it', async () => {
    const { pmgr } = await open('pmgr-close');
    const pilot = await pmgr.submitPilots(pd(1));
    await pilot.wait({ state: ACTIVE, timeout: 30, throwOnTimeout: true });
    await pmgr.close({ terminate: true, timeout: 30 });
    expect(pilot.state).toBe(CANCELED);
    expect(() => pmgr.registerCallback(() => {})).toThrow(IncorrectState);
    await expect(pmgr.waitPilots()).rejects.toThrow(IncorrectState);
  });

  it('a script that registers callbacks on both managers, runs a unit and closes its session exits by itself', async () => {
    const script = path.join(scratch, 'closes.mts');
    const client = path.resolve('client/index.ts');
    writeFileSync(
      script,
      `import { PilotManager, Session, UnitManager } from ${JSON.stringify(client)};
const session = await Session.create({ endpoint: process.env.SORTIE_API_URL });
const pmgr = await PilotManager.create(session);
pmgr.registerCallback((p, s) => console.log('pilot', p.uid, s));
const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 5, cores: 1 });
const umgr = await UnitManager.create(session, 'direct_submission');
umgr.registerCallback((u, s) => console.log('unit', u.uid, s));
await umgr.addPilots(pilot);
const unit = await umgr.submitUnits({ executable: '/bin/echo', arguments: ['bye'] });
console.log('final', await unit.wait({ timeout: 60 }));
await session.close({ timeout: 30 });
console.log('closed');
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      env: { ...process.env, SORTIE_API_URL: backend.apiUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      out += b.toString();
    });
    // The condition is the child's own exit; the timer only turns a hang into a failure.
    const code = await new Promise<number | null>((resolve, reject) => {
      const hang = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the script did not exit after closing its session:\n${out}`));
      }, 90_000);
      child.on('exit', (c) => {
        clearTimeout(hang);
        resolve(c);
      });
    });
    expect(out).toContain('final Done');
    expect(out).toContain('closed');
    expect(out).toMatch(/pilot \S+ Canceled/);
    expect(code).toBe(0);
  }, 120_000);
});
