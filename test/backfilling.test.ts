/**
 * The backfilling scheduler (late binding, issue 16 item 1) end to end on the embedded backend with
 * local.localhost pilots: RP's backfilling.py example; units waiting UNSCHEDULED with no pilot and picked
 * up by a pilot added later; a pilot's end returning its units to the manager's queue (and leaving them
 * UNSCHEDULED, not FAILED, while no pilot is left); session close cancelling what still waits; removePilots
 * stopping a pilot's pulls; two agents racing for one queue (each unit run once); and 2,000 units of 1–4
 * cores over three pilots of different sizes with one agent SIGKILLed midway.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type ComputePilot,
  type ComputeUnit,
  PilotManager,
  PilotState,
  SCHED_BACKFILLING,
  Session,
  UnitManager,
  UnitState,
  WAIT_QUEUE_SIZE,
} from '../client/index.ts';
import { BACKFILLING_UNITS, backfilling, checkBackfilling } from '../examples/backfilling.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { killUnitProcesses, until } from './e2e.ts';

/** Heartbeat budget: a SIGKILLed agent's pilot ends FAILED after it; generous for a loaded machine. */
const HEARTBEAT = 6;

let backend: Backend;
const sessions: Session[] = [];
const scratch = mkdtempSync(path.join(os.tmpdir(), 'sortie-backfill-'));

beforeAll(async () => {
  backend = await startBackend({ heartbeatSeconds: HEARTBEAT });
});
afterEach(async () => {
  for (const s of sessions.splice(0)) {
    await s.close({ timeout: 30 }).catch(() => {});
    killUnitProcesses(s.uid);
  }
});
afterAll(async () => {
  await backend?.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** A session with local.localhost pilots of up to 4 cores on this (2-core) machine: `local.bf` oversubscribes. */
async function open(name: string) {
  const session = await Session.create({ endpoint: backend.apiUrl, name });
  sessions.push(session);
  const base = await session.getResourceConfig('local.localhost');
  await session.addResourceConfig({ 'local.bf': { ...base, oversubscribe: true } });
  const pmgr = await PilotManager.create(session);
  const umgr = await UnitManager.create(session, SCHED_BACKFILLING);
  return { session, pmgr, umgr };
}

const pd = (cores: number) => ({ resource: 'local.bf', runtime: 10, cores });

async function waitActive(pilots: ComputePilot[]): Promise<void> {
  for (const p of pilots) {
    await p.wait({ state: [PilotState.ACTIVE, PilotState.FAILED, PilotState.CANCELED], timeout: 60 });
    expect(p.state, p.log.join('\n')).toBe(PilotState.ACTIVE);
  }
}

/** The agent's PID (a local pilot's job id). */
const agentPid = (p: ComputePilot) => Number(p.jobId);

/**
 * Per pilot, the most cores its units held at once, from each unit's start and stop times (the agent's
 * clock) and the pilot it ran on. An end at the same instant as a start frees its cores first.
 */
function peakCores(units: readonly ComputeUnit[]): Map<string, number> {
  const events = new Map<string, Array<[number, number]>>();
  for (const u of units) {
    const pid = u.pilotId;
    const a = u.startTime?.getTime();
    const b = u.stopTime?.getTime();
    if (!pid || a === undefined || b === undefined) continue;
    const cores = u.description.cores ?? 1;
    const list = events.get(pid) ?? [];
    list.push([a, cores], [b, -cores]);
    events.set(pid, list);
  }
  const peaks = new Map<string, number>();
  for (const [pid, list] of events) {
    list.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    let now = 0;
    let peak = 0;
    for (const [, d] of list) {
      now += d;
      peak = Math.max(peak, now);
    }
    peaks.set(pid, peak);
  }
  return peaks;
}

const states = (u: ComputeUnit) => u.stateHistory.map((e) => e.state);

describe('backfilling (late binding)', () => {
  it("RP's backfilling.py: three pilots, the later ones backfill, every unit DONE", async () => {
    const lines: string[] = [];
    const result = await backfilling(backend.apiUrl, { log: (l) => lines.push(l), quiet: true });
    expect(result.units).toHaveLength(BACKFILLING_UNITS);
    expect(checkBackfilling(result)).toEqual([]);
    for (const u of result.units) {
      // Late binding: each unit waited UNSCHEDULED, bound to no pilot, until a pilot claimed it.
      expect(states(u).slice(0, 2)).toEqual([UnitState.NEW, UnitState.UNSCHEDULED]);
      expect(lines).toContain(`[Callback]: ComputeUnit  '${u.uid}' state: Done.`);
    }
    expect(lines.some((l) => /ComputePilot 'pilot\.\d+' state: Active\./.test(l))).toBe(true);
  }, 300_000);

  it('units wait UNSCHEDULED with no pilot; a pilot added later runs them; its end returns a running restartable unit to the queue, where it waits (not FAILED) until another pilot comes', async () => {
    const { session, pmgr, umgr } = await open('bf-late');
    const sizes: number[] = [];
    umgr.registerCallback((_m: UnitManager, n: number) => sizes.push(n), WAIT_QUEUE_SIZE);
    const marker = path.join(scratch, 'late-first-run');
    const [hang, quick] = await umgr.submitUnits([
      {
        executable: '/bin/sh',
        arguments: ['-c', `mkdir ${marker} 2>/dev/null && exec /bin/sleep 300; echo $RP_PILOT_ID`],
        restartable: true,
      },
      { executable: '/bin/echo', arguments: ['quick'] },
    ]);
    if (!hang || !quick) throw new Error('two units expected');
    // No pilot at all: the wait returns the states when its time is up, and they are UNSCHEDULED.
    expect(await umgr.waitUnits({ state: UnitState.UNSCHEDULED, timeout: 30 })).toEqual([
      UnitState.UNSCHEDULED,
      UnitState.UNSCHEDULED,
    ]);
    expect(hang.pilotId).toBeUndefined();

    const first = await pmgr.submitPilots(pd(2));
    await umgr.addPilots(first);
    expect(await quick.wait({ timeout: 60 })).toBe(UnitState.DONE);
    expect(quick.pilotId).toBe(first.uid);
    await hang.wait({ state: UnitState.EXECUTING, timeout: 60 });
    expect(hang.pilotId).toBe(first.uid);

    // The only pilot dies under the restartable unit: back in the queue, UNSCHEDULED, no pilot, not FAILED.
    process.kill(agentPid(first), 'SIGKILL');
    expect(await first.wait({ timeout: 60 })).toBe(PilotState.FAILED);
    await until(
      'the unit back in the queue',
      async () => {
        await hang.refresh();
        return hang.state === UnitState.UNSCHEDULED ? true : undefined;
      },
      60_000,
    );
    expect(hang.pilotId).toBeUndefined();
    expect(hang.log.join('\n')).toContain(`back in ${umgr.uid}'s queue`);

    // A pilot added later takes it; the rerun (the marker exists) ends at once and says where it ran.
    const second = await pmgr.submitPilots(pd(1));
    await umgr.addPilots(second);
    expect(await hang.wait({ timeout: 60 })).toBe(UnitState.DONE);
    expect(hang.pilotId).toBe(second.uid);
    expect(hang.stdout).toBe(`${second.uid}\n`);
    const passed = states(hang);
    expect(passed.filter((s) => s === UnitState.UNSCHEDULED)).toHaveLength(2);
    expect(passed.filter((s) => s === UnitState.EXECUTING)).toHaveLength(2);
    // WAIT_QUEUE_SIZE counted the queue: 2 waiting, then down, and 1 again after the pilot's end.
    await until('queue size back to 0', () => (sizes.at(-1) === 0 ? true : undefined), 30_000);
    expect(sizes).toContain(2);
    expect(sizes.lastIndexOf(1)).toBeGreaterThan(sizes.indexOf(0));
    await session.close({ timeout: 30 });
  }, 300_000);

  it('removePilots stops a pilot taking queued units; session close cancels the units still waiting', async () => {
    const { session, pmgr, umgr } = await open('bf-remove');
    const pilot = await pmgr.submitPilots(pd(1));
    await umgr.addPilots(pilot);
    await waitActive([pilot]);
    const ran = await umgr.submitUnits({ executable: '/bin/true' });
    expect(await ran.wait({ timeout: 60 })).toBe(UnitState.DONE);
    await umgr.removePilots(pilot);
    const waiting = await umgr.submitUnits([{ executable: '/bin/true' }, { executable: '/bin/true' }]);
    // Not a clock: the pilot's pull answers after the removal carry no unit; check the pilot is still
    // pulling (ACTIVE, heartbeating) and the units are still in the queue after another unit of another
    // manager ran on it in between.
    const other = await UnitManager.create(session, 'direct_submission');
    await other.addPilots(pilot);
    const probe = await other.submitUnits({ executable: '/bin/true' });
    expect(await probe.wait({ timeout: 60 })).toBe(UnitState.DONE);
    for (const u of waiting) {
      await u.refresh();
      expect(u.state).toBe(UnitState.UNSCHEDULED);
      expect(u.pilotId).toBeUndefined();
    }
    const { uid, token } = session;
    await session.close({ timeout: 30 });
    const again = await Session.reconnect(uid, { endpoint: backend.apiUrl, token });
    const um = await again.getUnitManagers(umgr.uid);
    const after = await um.getUnits(waiting.map((u) => u.uid));
    expect(after.map((u) => u.state)).toEqual([UnitState.CANCELED, UnitState.CANCELED]);
    for (const u of after) expect(u.log.join('\n')).toContain('cancelled: session closed');
    await again.close({ terminate: false, timeout: 10 }).catch(() => {});
  }, 120_000);

  it('two agents racing for one queue: every unit runs exactly once', async () => {
    const { pmgr, umgr } = await open('bf-race');
    const dir = mkdtempSync(path.join(scratch, 'race-'));
    const pilots = await pmgr.submitPilots([pd(2), pd(2)]);
    await umgr.addPilots(pilots);
    await waitActive(pilots);
    const n = 200;
    const units = await umgr.submitUnits(
      Array.from({ length: n }, () => ({
        executable: '/bin/sh',
        arguments: ['-c', `echo $RP_PILOT_ID >> ${dir}/$RP_UNIT_ID`],
      })),
    );
    expect(await umgr.waitUnits({ timeout: 240 })).toEqual(units.map(() => UnitState.DONE));
    const files = readdirSync(dir);
    expect(files.sort()).toEqual(units.map((u) => u.uid).sort());
    for (const u of units) {
      const lines = readFileSync(path.join(dir, u.uid), 'utf8').trim().split('\n');
      expect(lines, u.uid).toEqual([u.pilotId]);
    }
    // Both raced for the same queue, and both won some.
    for (const p of pilots)
      expect(
        units.some((u) => u.pilotId === p.uid),
        p.uid,
      ).toBe(true);
  }, 300_000);

  it('2,000 units of 1–4 cores over pilots of 2, 3 and 4 cores, one agent SIGKILLed midway: no pilot over its cores, its units go to the others, all DONE', async () => {
    const { pmgr, umgr } = await open('bf-2000');
    const [p2, p3, p4] = await pmgr.submitPilots([pd(2), pd(3), pd(4)]);
    if (!p2 || !p3 || !p4) throw new Error('three pilots expected');
    // The victim comes first and alone, so that the unit that hangs on its first run lands there.
    await umgr.addPilots(p3);
    await waitActive([p3]);
    const marker = path.join(scratch, 'big-first-run');
    const hang = await umgr.submitUnits({
      executable: '/bin/sh',
      arguments: ['-c', `mkdir ${marker} 2>/dev/null && exec /bin/sleep 300; true`],
      restartable: true,
    });
    await hang.wait({ state: UnitState.EXECUTING, timeout: 60 });
    expect(hang.pilotId).toBe(p3.uid);

    let doneOnVictim = 0;
    umgr.registerCallback((u, s) => {
      if (s === UnitState.DONE && u.pilotId === p3.uid) doneOnVictim++;
    });
    await umgr.addPilots([p2, p4]);
    const units = await umgr.submitUnits(
      // Mostly small units, as ensembles are; every eighth needs 4 cores (only p4 holds those, one at a time,
      // so they set the pace: 1 + i % 4 made it 500 in a row there, minutes on a loaded machine).
      Array.from({ length: 2000 }, (_, i) => ({
        executable: '/bin/true',
        cores: [1, 2, 1, 3, 1, 2, 1, 4][i % 8],
        restartable: true,
      })),
    );
    await until('the victim ran units', () => (doneOnVictim >= 20 ? true : undefined), 120_000);
    process.kill(agentPid(p3), 'SIGKILL');
    expect(await p3.wait({ timeout: 60 })).toBe(PilotState.FAILED);

    const all = [hang, ...units];
    const final = await umgr.waitUnits({ uids: all.map((u) => u.uid), timeout: 420 });
    const notDone = all.filter((_, i) => final[i] !== UnitState.DONE);
    expect(
      notDone.map((u) => `${u.uid} ${u.state} ${u.log.join(' | ')}`),
      'units not DONE',
    ).toEqual([]);
    // The unit that hung on the victim went back to the queue and ran again elsewhere.
    expect(hang.pilotId).not.toBe(p3.uid);
    expect(states(hang).filter((s) => s === UnitState.UNSCHEDULED)).toHaveLength(2);
    // Every pilot ran units; none ever held more cores than it has.
    const peaks = peakCores(all);
    for (const [p, cores] of [
      [p2, 2],
      [p3, 3],
      [p4, 4],
    ] as const) {
      expect(all.filter((u) => u.pilotId === p.uid).length, p.uid).toBeGreaterThan(0);
      expect(peaks.get(p.uid), p.uid).toBeLessThanOrEqual(cores);
    }
    // 4-core units fit only the 4-core pilot.
    for (const u of units) if ((u.description.cores ?? 1) === 4) expect(u.pilotId, u.uid).toBe(p4.uid);
  }, 600_000);
});
