/**
 * Exactly-once start of non-restartable units (issue 11): an agent SIGKILLed right after it spawned units
 * must not let the sweep run any of them a second time. Each unit's command first makes a marker
 * directory (`mkdir` fails if it exists, and the rerun then leaves a `.twice` file) and then sleeps, so a
 * second run is counted on disk, whatever the control plane believes.
 *
 * Each case: a pilot A with three units bound to it (two run, one waits for a core), a second pilot B on
 * the same round_robin manager; as soon as the first marker appears, A's agent is killed. Then: no marker
 * made twice, every unit final (none stuck). Cases run in lanes (one session and one pilot B per lane) so
 * that the loop fits in a few minutes; SORTIE_EXACTLY_ONCE_CASES sets how many (100 by default).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ComputePilot,
  PilotManager,
  PilotState,
  Session,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { killUnitProcesses, until } from './e2e.ts';

const CASES = Number(process.env.SORTIE_EXACTLY_ONCE_CASES ?? 100);
const LANES = 4;
const UNITS = 3;

let backend: Backend;
const scratch = mkdtempSync(path.join(os.tmpdir(), 'sortie-once-'));
const sessions: Session[] = [];

beforeAll(async () => {
  // A short budget ends each killed agent's pilot fast; 2 s proved too tight when the whole suite loads the
  // machine (healthy pilots then lost their heartbeat too, and a case's units had no live pilot to run on).
  backend = await startBackend({ heartbeatSeconds: 5 });
});
afterAll(async () => {
  for (const s of sessions) {
    await s.close({ timeout: 20 }).catch(() => {});
    killUnitProcesses(s.uid);
  }
  await backend?.close();
  rmSync(scratch, { recursive: true, force: true });
});

const pd = { resource: 'local.localhost', runtime: 10, cores: 2 };

/** The unit: first run makes its marker (with its agent's pid inside) and sleeps; a rerun leaves `.twice`. */
const unitOf = (markers: string) => ({
  executable: '/bin/sh',
  arguments: [
    '-c',
    `mkdir ${markers}/$RP_UNIT_ID 2>/dev/null || { touch ${markers}/$RP_UNIT_ID.twice; exit 0; }; ` +
      `cp $RP_PILOT_SANDBOX/agent.pid ${markers}/$RP_UNIT_ID/agent.tmp && ` +
      `mv ${markers}/$RP_UNIT_ID/agent.tmp ${markers}/$RP_UNIT_ID/agent; exec /bin/sleep 1`,
  ],
});

interface CaseResult {
  states: string[];
  doneOnB: number;
}

async function runCase(
  session: Session,
  pmgr: PilotManager,
  b: ComputePilot,
  n: number,
): Promise<CaseResult> {
  const markers = path.join(scratch, `case-${n}`);
  mkdirSync(markers);
  const a = await pmgr.submitPilots(pd);
  const umgr = await UnitManager.create(session, 'round_robin');
  await umgr.addPilots(a);
  // Bound to A at submit (its only pilot then); B joins afterwards, to take what A's sweep reschedules.
  const units = await umgr.submitUnits(Array.from({ length: UNITS }, () => unitOf(markers)));
  await umgr.addPilots(b);
  // Right after the first unit process shows (its marker), before the agent's batched reports go out.
  const pid = await until(
    `case ${n}: a unit started on ${a.uid}`,
    () => {
      for (const u of units) {
        const f = path.join(markers, u.uid, 'agent');
        if (existsSync(f)) return Number(readFileSync(f, 'utf8')) || undefined;
      }
      return undefined;
    },
    60_000,
    5,
  );
  process.kill(pid, 'SIGKILL');
  const states = await umgr.waitUnits({ timeout: 60, throwOnTimeout: true });
  expect(await a.wait({ timeout: 30 })).toBe(PilotState.FAILED);
  const twice = readdirSync(markers).filter((f) => f.endsWith('.twice'));
  expect(twice, `case ${n}: units run twice`).toEqual([]);
  await umgr.close();
  return { states, doneOnB: units.filter((u) => u.state === UnitState.DONE && u.pilotId === b.uid).length };
}

describe('exactly-once start', () => {
  it(`${CASES} agents killed right after spawn: no non-restartable unit runs twice, none stuck`, async () => {
    const results: CaseResult[] = [];
    let next = 0;
    const lane = async (l: number) => {
      const session = await Session.create({ endpoint: backend.apiUrl, name: `once-${l}` });
      sessions.push(session);
      const pmgr = await PilotManager.create(session);
      const b = await pmgr.submitPilots(pd);
      while (next < CASES) results.push(await runCase(session, pmgr, b, next++));
    };
    await Promise.all(Array.from({ length: LANES }, (_, l) => lane(l)));

    expect(results).toHaveLength(CASES);
    const finals = new Set<string>([UnitState.DONE, UnitState.FAILED, UnitState.CANCELED]);
    for (const r of results) for (const s of r.states) expect(finals.has(s), s).toBe(true);
    // The loop exercised both paths: units started on A (FAILED by the sweep, never rerun) and units
    // still queued on A (rescheduled, run once on B).
    expect(results.some((r) => r.states.includes(UnitState.FAILED))).toBe(true);
    expect(results.reduce((n, r) => n + r.doneOnB, 0)).toBeGreaterThan(0);
  }, 900_000);
});
