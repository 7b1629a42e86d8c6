/**
 * The examples, end to end on one embedded backend: real agents, real processes. Each test asserts
 * what the workload must produce (states, exit codes, stdout, where units ran), that every unit's
 * state history is in order without duplicates, and that the callback registered before submission
 * saw each unit's states exactly once, in the order of its history.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ComputePilot, type ComputeUnit, PilotState, UnitState } from '../client/index.ts';
import { failingUnits, MISSING } from '../examples/failing-units.ts';
import { gettingStarted } from '../examples/getting-started.ts';
import { multiplePilots } from '../examples/multiple-pilots.ts';
import { POST_FILE, postFile, prePostExec } from '../examples/pre-post-exec.ts';
import { unitEnvironment } from '../examples/unit-environment.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { CallbackLog, historyProblems } from './e2e.ts';

let backend: Backend;
beforeAll(async () => {
  backend = await startBackend();
});
afterAll(async () => {
  await backend?.close();
});

const quiet = { log: () => {}, quiet: true } as const;

/** What holds for every example: ordered histories, and callbacks that match them one for one. */
function expectOrderedAndCalledBack(units: ComputeUnit[], callbacks: CallbackLog): void {
  expect(units.flatMap(historyProblems)).toEqual([]);
  for (const u of units) expect(callbacks.statesOf(u.uid), u.uid).toEqual(u.stateHistory.map((e) => e.state));
  const known = new Set(units.map((u) => u.uid));
  expect(callbacks.seen.filter((s) => !known.has(s.uid))).toEqual([]);
  expect(callbacks.seen.length).toBe(units.reduce((n, u) => n + u.stateHistory.length, 0));
}

/** Pilots ended CANCELED by session.close, having passed every pilot state once, in order. */
function expectPilotsClosed(pilots: ComputePilot[]): void {
  for (const p of pilots) {
    expect(p.state, p.uid).toBe(PilotState.CANCELED);
    expect(p.stateHistory.map((e) => e.state)).toEqual([
      PilotState.PENDING_LAUNCH,
      PilotState.LAUNCHING,
      PilotState.PENDING_ACTIVE,
      PilotState.ACTIVE,
      PilotState.CANCELED,
    ]);
  }
}

describe.concurrent('examples, end to end', () => {
  it('getting-started: 16 units DONE with their own output', async () => {
    const callbacks = new CallbackLog();
    const units = await gettingStarted(backend.apiUrl, { ...quiet, onUnitState: callbacks.record });
    expect(units).toHaveLength(16);
    units.forEach((u, i) => {
      expect(u.state, u.uid).toBe(UnitState.DONE);
      expect(u.exitCode, u.uid).toBe(0);
      if (i % 4 === 3) expect(u.stdout, u.uid).toMatch(/\d\d:\d\d:\d\d/);
      else expect(u.stdout, u.uid).toBe(`unit ${i} says hello\n`);
      const passed = u.stateHistory.map((e) => e.state);
      const milestones: UnitState[] = [
        UnitState.NEW,
        UnitState.PENDING_EXECUTION,
        UnitState.SCHEDULING,
        UnitState.EXECUTING,
        UnitState.DONE,
      ];
      expect(passed.filter((s) => milestones.includes(s))).toEqual(milestones);
    });
    expect(new Set(units.map((u) => u.pilotId)).size).toBe(1);
    expectOrderedAndCalledBack(units, callbacks);
  });

  it('failing-units: every 10th unit FAILED with exit code 127 naming /bin/data, the rest DONE', async () => {
    const callbacks = new CallbackLog();
    const { units, pilots } = await failingUnits(backend.apiUrl, { ...quiet, onUnitState: callbacks.record });
    expect(units).toHaveLength(20);
    units.forEach((u, i) => {
      if (i % 10 === 0) {
        expect(u.state, u.uid).toBe(UnitState.FAILED);
        expect(u.exitCode, u.uid).toBe(127);
        expect(u.stderr, u.uid).toContain(MISSING);
        expect(u.stateHistory.map((e) => e.state)).not.toContain(UnitState.DONE);
      } else {
        expect(u.state, u.uid).toBe(UnitState.DONE);
        expect(u.exitCode, u.uid).toBe(0);
        expect(u.stdout, u.uid).toMatch(/\d\d:\d\d:\d\d/);
      }
    });
    expect(units.filter((u) => u.state === UnitState.FAILED)).toHaveLength(2);
    expectOrderedAndCalledBack(units, callbacks);
    expectPilotsClosed(pilots);
  });

  it('unit-environment: each unit greets with its own uid and the environment it was given', async () => {
    const callbacks = new CallbackLog();
    const { units, pilots } = await unitEnvironment(backend.apiUrl, {
      ...quiet,
      onUnitState: callbacks.record,
    });
    expect(units).toHaveLength(8);
    for (const u of units) {
      expect(u.state, u.uid).toBe(UnitState.DONE);
      expect(u.stdout).toBe(`${u.uid} greets jabberwocky\n`);
    }
    expectOrderedAndCalledBack(units, callbacks);
    expectPilotsClosed(pilots);
  });

  it('pre-post-exec: pre-exec sets the environment, post-exec writes a file in the unit sandbox', async () => {
    const callbacks = new CallbackLog();
    const { units, pilots } = await prePostExec(backend.apiUrl, { ...quiet, onUnitState: callbacks.record });
    expect(units).toHaveLength(8);
    const sandboxes = new Set<string>();
    for (const u of units) {
      expect(u.state, u.uid).toBe(UnitState.DONE);
      expect(u.stdout).toBe(`${u.uid} greets jabberwocky\n`);
      expect(u.workingDirectory, u.uid).toMatch(new RegExp(`${pilots[0]?.uid}/${u.uid}$`));
      expect(postFile(u.workingDirectory), `${u.uid} ${POST_FILE}`).toBe(`${u.uid} done 0\n`);
      sandboxes.add(u.workingDirectory ?? '');
    }
    expect(sandboxes.size).toBe(units.length);
    expectOrderedAndCalledBack(units, callbacks);
    expectPilotsClosed(pilots);
  });

  it('multiple-pilots: round robin spreads the units over both pilots, each stdout names its pilot', async () => {
    const callbacks = new CallbackLog();
    const { units, pilots } = await multiplePilots(backend.apiUrl, {
      ...quiet,
      onUnitState: callbacks.record,
    });
    expect(pilots).toHaveLength(2);
    const [a, b] = pilots.map((p) => p.uid);
    expect(units.map((u) => u.pilotId)).toEqual([a, b, a, b, a, b, a, b]);
    for (const u of units) {
      expect(u.state, u.uid).toBe(UnitState.DONE);
      expect(u.stdout, u.uid).toBe(`${u.pilotId}\n`);
    }
    expectOrderedAndCalledBack(units, callbacks);
    expectPilotsClosed(pilots);
  });
});
