/**
 * Faults, end to end on an embedded backend with a 3 s heartbeat budget: an agent killed with SIGKILL,
 * a unit cancelled while it runs (and after it ended), a pilot cancelled with units still queued, a
 * session closed under a live pilot, and a wait that times out. Each asserts the state every object
 * ends in, that no wait hangs, and that processes really are gone.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type ComputePilot,
  PilotManager,
  PilotState,
  Session,
  Timeout,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { alive, killUnitProcesses, unitProcesses, until } from './e2e.ts';

const HEARTBEAT = 3;

let backend: Backend;
const sessions: Session[] = [];
const scratch = mkdtempSync(path.join(os.tmpdir(), 'sortie-faults-'));

beforeAll(async () => {
  backend = await startBackend({ heartbeatSeconds: HEARTBEAT });
});
afterEach(async () => {
  for (const s of sessions.splice(0)) {
    await s.close({ timeout: 20 }).catch(() => {});
    // Units of a killed agent are orphans nobody else will stop (see the report on fork pilots).
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
const sleep30 = { executable: '/bin/sleep', arguments: ['30'] };

/** Waits until the pilots are ACTIVE; on failure the error carries their logs (why they are not). */
async function waitActive(pilots: ComputePilot[]): Promise<void> {
  const pmgr = pilots[0]?.pilotManager;
  try {
    await pmgr?.waitPilots({
      uids: pilots.map((p) => p.uid),
      state: PilotState.ACTIVE,
      timeout: 30,
      throwOnTimeout: true,
    });
  } catch (err) {
    const logs = pilots.map((p) => `${p.uid} ${p.state}:\n  ${p.log.join('\n  ')}`).join('\n');
    throw new Error(`${(err as Error).message}\n${logs}`);
  }
}

/** The agent's PID: the job id of a local.localhost pilot, and what the agent wrote into its sandbox. */
async function agentPid(pilot: ComputePilot): Promise<number> {
  await waitActive([pilot]);
  const pid = Number(pilot.jobId);
  expect(pid).toBeGreaterThan(0);
  expect(Number(readFileSync(path.join(pilot.sandbox ?? '', 'agent.pid'), 'utf8'))).toBe(pid);
  expect(alive(pid)).toBe(true);
  return pid;
}

describe('faults', () => {
  it('an agent killed with SIGKILL: pilot FAILED within the heartbeat budget, saying so; its units FAILED', async () => {
    const { session, pmgr } = await open('agent-killed');
    const pilot = await pmgr.submitPilots(pd(2));
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const units = await umgr.submitUnits([sleep30, sleep30]);
    await umgr.waitUnits({ state: UnitState.EXECUTING, timeout: 30 });
    const pid = await agentPid(pilot);

    process.kill(pid, 'SIGKILL');
    // Not a clock bound: what ended the pilot must be the heartbeat timeout (not its walltime, which is
    // 10 minutes away), and only the heartbeat timeout writes this reason.
    expect(await pilot.wait({ timeout: 30 })).toBe(PilotState.FAILED);
    expect(pilot.log.join('\n')).toMatch(new RegExp(`agent lost: no heartbeat for ${HEARTBEAT} s`));
    expect(pilot.stateHistory.map((e) => e.state).slice(-2)).toEqual([PilotState.ACTIVE, PilotState.FAILED]);

    expect(await umgr.waitUnits({ timeout: 10 })).toEqual([UnitState.FAILED, UnitState.FAILED]);
    for (const u of units) {
      expect(u.log.join('\n'), u.uid).toContain(`pilot ${pilot.uid} ended Failed`);
      expect(u.stateHistory.map((e) => e.state)).toContain(UnitState.EXECUTING);
    }
    // The pilot's end also ends what its dead agent left running.
    await until(
      'orphaned units killed',
      () => (unitProcesses(session.uid).length === 0 ? true : undefined),
      30_000,
    );
  });

  it('an agent killed under a restartable unit: the unit is rescheduled and ends DONE on the other pilot', async () => {
    const { session, pmgr } = await open('agent-killed-restart');
    const pilots = await pmgr.submitPilots([pd(1), pd(1)]);
    await waitActive(pilots);
    const umgr = await UnitManager.create(session, 'round_robin');
    await umgr.addPilots(pilots);
    // The first run (wherever it lands) hangs; a rerun prints the pilot it runs on.
    const marker = path.join(scratch, 'first-run');
    const unit = await umgr.submitUnits({
      executable: '/bin/sh',
      arguments: ['-c', `mkdir ${marker} 2>/dev/null && exec /bin/sleep 30; echo $RP_PILOT_ID`],
      restartable: true,
    });
    await unit.wait({ state: UnitState.EXECUTING, timeout: 30 });
    const victim = pilots.find((p) => p.uid === unit.pilotId) as ComputePilot;
    const other = pilots.find((p) => p !== victim) as ComputePilot;
    expect(victim).toBeDefined();

    process.kill(await agentPid(victim), 'SIGKILL');
    expect(await unit.wait({ timeout: 30 })).toBe(UnitState.DONE);
    expect(unit.pilotId).toBe(other.uid);
    expect(unit.stdout).toBe(`${other.uid}\n`);
    const passed = unit.stateHistory.map((e) => e.state);
    expect(passed).toContain(UnitState.UNSCHEDULED);
    expect(passed.filter((s) => s === UnitState.EXECUTING)).toHaveLength(2);
    expect(passed.indexOf(UnitState.UNSCHEDULED)).toBeGreaterThan(passed.indexOf(UnitState.EXECUTING));
    expect(unit.log.join('\n')).toContain(`rescheduled to ${other.uid}`);
    expect(await victim.wait({ timeout: 10 })).toBe(PilotState.FAILED);
    await other.refresh();
    expect(other.state).toBe(PilotState.ACTIVE);
  });

  it('cancel a unit while EXECUTING: CANCELED and its process is gone; cancel a final unit: no-op', async () => {
    const { session, pmgr } = await open('cancel-unit');
    const pilot = await pmgr.submitPilots(pd(2));
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const [running, quick] = await umgr.submitUnits([sleep30, { executable: '/bin/true' }]);
    if (!running || !quick) throw new Error('submitUnits returned fewer units');

    await running.wait({ state: UnitState.EXECUTING, timeout: 30 });
    const pid = await until('unit process', () => unitProcesses(session.uid, running.uid)[0], 30_000);
    expect(alive(pid)).toBe(true);
    await running.cancel();
    expect(await running.wait({ timeout: 15 })).toBe(UnitState.CANCELED);
    expect(alive(pid)).toBe(false);
    expect(running.stateHistory.map((e) => e.state).slice(-2)).toEqual([
      UnitState.EXECUTING,
      UnitState.CANCELED,
    ]);

    expect(await quick.wait({ timeout: 30 })).toBe(UnitState.DONE);
    const before = quick.stateHistory.length;
    await expect(quick.cancel()).resolves.toBeUndefined();
    await expect(umgr.cancelUnits([quick.uid, running.uid])).resolves.toBeUndefined();
    await umgr.getUnits(); // re-reads the feed
    expect(quick.state).toBe(UnitState.DONE);
    expect(quick.stateHistory).toHaveLength(before);
    expect(running.state).toBe(UnitState.CANCELED);
  });

  it('cancel the only pilot with units queued: the queued units end CANCELED and every wait returns', async () => {
    const { session, pmgr } = await open('cancel-pilot');
    const pilot = await pmgr.submitPilots(pd(1));
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const [first, ...queued] = await umgr.submitUnits([sleep30, sleep30, sleep30, sleep30]);
    if (!first) throw new Error('submitUnits returned no unit');
    await first.wait({ state: UnitState.EXECUTING, timeout: 30 });

    await pilot.cancel();
    expect(await pilot.wait({ timeout: 20 })).toBe(PilotState.CANCELED);
    await umgr.waitUnits({ timeout: 15 });
    for (const u of queued) {
      expect(u.state, u.uid).toBe(UnitState.CANCELED);
      expect(u.stateHistory.map((e) => e.state)).not.toContain(UnitState.EXECUTING);
    }
    expect(first.state).toBe(UnitState.CANCELED);
    expect(unitProcesses(session.uid)).toEqual([]);
  });

  it('session.close() with a live pilot: the pilot ends CANCELED, its agent exits, close returns', async () => {
    const { session, pmgr } = await open('close-live');
    const pilot = await pmgr.submitPilots(pd(1));
    const pid = await agentPid(pilot);
    // close() always returns (its wait is bounded); that it returned because the pilot ended, not because
    // its bound ran out, shows in the state it left: the pilot CANCELED, and no warning about a pilot
    // manager that did not end cleanly.
    const warn = vi.spyOn(console, 'warn');
    try {
      await session.close({ timeout: 20 });
      expect(warn).not.toHaveBeenCalledWith(
        expect.stringContaining('did not end cleanly'),
        expect.anything(),
      );
    } finally {
      warn.mockRestore();
    }
    expect(session.closed).toBe(true);
    expect(pilot.state).toBe(PilotState.CANCELED);
    expect(pilot.stateHistory.map((e) => e.state).at(-1)).toBe(PilotState.CANCELED);
    await until('agent exit', () => (alive(pid) ? undefined : true), 30_000);
  });

  it('a wait whose time is up returns the states as RP does; throwOnTimeout throws Timeout naming the unit', async () => {
    const { session, pmgr } = await open('wait-timeout');
    const pilot = await pmgr.submitPilots(pd(1));
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const unit = await umgr.submitUnits(sleep30);
    // A wait whose time is up returns the states (RP); the unit was still in a state that is not final.
    const [state] = await umgr.waitUnits({ uids: [unit.uid], timeout: 1 });
    expect(state).toBeDefined();
    expect([UnitState.DONE, UnitState.FAILED, UnitState.CANCELED]).not.toContain(state);
    expect(await unit.wait({ timeout: 0.5 })).toBe(unit.state);
    // With throwOnTimeout it ends by its own timeout: the Timeout says which bound ran out and names the unit.
    const err = await umgr
      .waitUnits({ uids: [unit.uid], timeout: 1, throwOnTimeout: true })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Timeout);
    expect((err as Error).message).toContain('after 1 s');
    expect((err as Error).message).toContain(unit.uid);
    await expect(unit.wait({ timeout: 0.5, throwOnTimeout: true })).rejects.toThrow(
      new RegExp(`${unit.uid}=`),
    );
    await expect(umgr.waitUnits({ timeout: 0.5, throwOnTimeout: true })).rejects.toBeInstanceOf(Timeout);
  });
});
