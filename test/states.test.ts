import { describe, expect, it } from 'vitest';
import {
  claimState,
  isFinal,
  PilotState,
  pendingState,
  pilotModel,
  progress,
  progressOrStay,
  reschedule,
  type StateModel,
  sweepTarget,
  UnitState,
  unitModel,
  unitSkips,
} from '../core/states.ts';

/**
 * Allowed moves written out by hand, one row per current state, one column per target (same order as
 * the states list): `x` allowed, `.` refused. This is the spec; the code is checked against it.
 */
const PILOT_MATRIX = `
                 PL LA PA AC DO FA CA
  PendingLaunch  .  x  x  x  x  x  x
  Launching      .  .  x  x  x  x  x
  PendingActive  .  .  .  x  x  x  x
  Active         .  .  .  .  x  x  x
  Done           .  .  .  .  .  .  .
  Failed         .  .  .  .  x  .  .
  Canceled       .  .  .  .  x  x  .
`;

const UNIT_MATRIX = `
                        NE UN PI SI PE SC EX PO SO DO FA CA
  New                   .  x  x  x  x  x  x  x  x  x  x  x
  Unscheduled           .  .  x  x  x  x  x  x  x  x  x  x
  PendingInputStaging   .  .  .  x  x  x  x  x  x  x  x  x
  StagingInput          .  .  .  .  x  x  x  x  x  x  x  x
  PendingExecution      .  .  .  .  .  x  x  x  x  x  x  x
  Scheduling            .  .  .  .  .  .  x  x  x  x  x  x
  Executing             .  .  .  .  .  .  .  x  x  x  x  x
  PendingOutputStaging  .  .  .  .  .  .  .  .  x  x  x  x
  StagingOutput         .  .  .  .  .  .  .  .  .  x  x  x
  Done                  .  .  .  .  .  .  .  .  .  .  .  .
  Failed                .  .  .  .  .  .  .  .  .  .  .  .
  Canceled              .  .  .  .  .  .  .  .  .  x  x  .
`;

const PILOT_STATES = Object.values(PilotState);
const UNIT_STATES = Object.values(UnitState);
/** The happy path: what DONE and non-final targets fill in. */
const PILOT_PATH: PilotState[] = ['PendingLaunch', 'Launching', 'PendingActive', 'Active', 'Done'];
const UNIT_PATH: UnitState[] = [
  'New',
  'Unscheduled',
  'PendingInputStaging',
  'StagingInput',
  'PendingExecution',
  'Scheduling',
  'Executing',
  'PendingOutputStaging',
  'StagingOutput',
  'Done',
];

interface Case<S> {
  current: S;
  target: S;
  allowed: boolean;
}

function cases<S extends string>(matrix: string, states: readonly S[]): Case<S>[] {
  const rows = matrix
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/));
  expect(rows.map((r) => r[0])).toEqual(states);
  return rows.flatMap((row) =>
    states.map((target, j) => ({ current: row[0] as S, target, allowed: row[j + 1] === 'x' })),
  );
}

/** Expected `passed`: exits and final overrides enter the target directly; the rest fill in the path. */
function expectedPassed<S extends string>(model: StateModel<S>, path: readonly S[], c: Case<S>): S[] {
  if (isFinal(model, c.current) || (isFinal(model, c.target) && c.target !== path.at(-1))) return [c.target];
  return path
    .slice(path.indexOf(c.current) + 1, path.indexOf(c.target) + 1)
    .filter((s) => s === c.target || !model.detours?.includes(s));
}

function suite<S extends string>(
  model: StateModel<S>,
  matrix: string,
  states: readonly S[],
  path: S[],
): void {
  const all = cases(matrix, states);
  it('covers every pair of states', () => {
    expect(all).toHaveLength(states.length ** 2);
  });
  it.each(all.filter((c) => c.allowed))('allows $current → $target, passing every state entered', (c) => {
    // Act
    const p = progress(model, c.current, c.target);
    // Assess
    expect(p).toEqual({ ok: true, state: c.target, passed: expectedPassed(model, path, c) });
  });
  it.each(all.filter((c) => !c.allowed))('refuses $current → $target, naming both states', (c) => {
    const p = progress(model, c.current, c.target);
    expect(p.ok).toBe(false);
    if (p.ok) return;
    expect(p.reason).toContain(c.current);
    expect(p.reason).toContain(c.target);
  });
}

describe('progress', () => {
  describe('pilot model', () => suite(pilotModel, PILOT_MATRIX, PILOT_STATES, PILOT_PATH));
  describe('unit model', () => suite(unitModel, UNIT_MATRIX, UNIT_STATES, UNIT_PATH));

  it('lets a retried step stay in its state (no-op), and nothing else', () => {
    expect(progressOrStay(pilotModel, 'Launching', 'Launching')).toEqual({
      ok: true,
      state: 'Launching',
      passed: [],
    });
    expect(progress(pilotModel, 'Launching', 'Launching').ok).toBe(false);
    // Forward moves are progress's; backward and final ones stay refused.
    expect(progressOrStay(pilotModel, 'PendingLaunch', 'Launching')).toEqual(
      progress(pilotModel, 'PendingLaunch', 'Launching'),
    );
    expect(progressOrStay(pilotModel, 'PendingActive', 'Launching').ok).toBe(false);
    expect(progressOrStay(pilotModel, 'Failed', 'Failed').ok).toBe(false);
    expect(progressOrStay(unitModel, 'Done', 'Done').ok).toBe(false);
  });

  it('fills in skipped states so callbacks fire once per state', () => {
    expect(progress(unitModel, 'PendingExecution', 'Done')).toEqual({
      ok: true,
      state: 'Done',
      passed: ['Scheduling', 'Executing', 'PendingOutputStaging', 'StagingOutput', 'Done'],
    });
  });

  it('never fills in UNSCHEDULED: a unit bound at submit was never unscheduled', () => {
    expect(progress(unitModel, 'New', 'PendingExecution')).toEqual({
      ok: true,
      state: 'PendingExecution',
      passed: ['PendingInputStaging', 'StagingInput', 'PendingExecution'],
    });
    expect(progress(unitModel, 'New', 'Unscheduled')).toEqual({
      ok: true,
      state: 'Unscheduled',
      passed: ['Unscheduled'],
    });
  });

  it('fills in and enters staging states only for a unit with directives (RP 0.22)', () => {
    const none = unitSkips({});
    const inOnly = unitSkips({ inputStaging: [{}] });
    const outOnly = unitSkips({ outputStaging: [{}] });
    expect(progress(unitModel, 'New', 'PendingExecution', none)).toEqual({
      ok: true,
      state: 'PendingExecution',
      passed: ['PendingExecution'],
    });
    expect(progress(unitModel, 'Scheduling', 'Done', none)).toEqual({
      ok: true,
      state: 'Done',
      passed: ['Executing', 'Done'],
    });
    expect(progress(unitModel, 'StagingInput', 'Done', inOnly)).toEqual({
      ok: true,
      state: 'Done',
      passed: ['PendingExecution', 'Scheduling', 'Executing', 'Done'],
    });
    expect(progress(unitModel, 'Executing', 'Done', outOnly)).toEqual({
      ok: true,
      state: 'Done',
      passed: ['PendingOutputStaging', 'StagingOutput', 'Done'],
    });
    expect(progress(unitModel, 'Executing', 'StagingOutput', none)).toEqual({
      ok: false,
      reason: "unit cannot go from Executing to StagingOutput: StagingOutput is not on this unit's path",
    });
    expect(progress(unitModel, 'PendingInputStaging', 'StagingInput', inOnly).ok).toBe(true);
    expect([pendingState({}), claimState({}), pendingState({ inputStaging: [] })]).toEqual([
      'PendingExecution',
      'Scheduling',
      'PendingExecution',
    ]);
    expect([pendingState({ inputStaging: [{}] }), claimState({ inputStaging: [{}] })]).toEqual([
      'PendingInputStaging',
      'StagingInput',
    ]);
  });

  it('enters FAILED directly: a unit failing before it ran never passed Executing', () => {
    expect(progress(unitModel, 'New', 'Failed')).toEqual({ ok: true, state: 'Failed', passed: ['Failed'] });
  });

  it('says why a move is refused', () => {
    expect(progress(unitModel, 'Executing', 'Scheduling')).toEqual({
      ok: false,
      reason: 'unit cannot go from Executing to Scheduling: would go backward',
    });
    expect(progress(pilotModel, 'Done', 'Failed')).toEqual({
      ok: false,
      reason: 'pilot cannot go from Done to Failed: Done is final',
    });
  });
});

describe('isFinal', () => {
  it.each(UNIT_STATES)('unit %s', (s) => {
    expect(isFinal(unitModel, s)).toBe(['Done', 'Failed', 'Canceled'].includes(s));
  });
  it.each(PILOT_STATES)('pilot %s', (s) => {
    expect(isFinal(pilotModel, s)).toBe(['Done', 'Failed', 'Canceled'].includes(s));
  });
});

describe('sweepTarget', () => {
  const table: [UnitState, UnitState | null, UnitState | null][] = [
    // state, restartable → , not restartable →
    ['New', 'Unscheduled', 'Unscheduled'],
    ['Unscheduled', 'Unscheduled', 'Unscheduled'],
    ['PendingInputStaging', 'Unscheduled', 'Unscheduled'],
    ['StagingInput', 'Unscheduled', 'Unscheduled'],
    ['PendingExecution', 'Unscheduled', 'Unscheduled'],
    ['Scheduling', 'Unscheduled', 'Unscheduled'],
    ['Executing', 'Unscheduled', 'Failed'],
    ['PendingOutputStaging', 'Unscheduled', 'Failed'],
    ['StagingOutput', 'Unscheduled', 'Failed'],
    ['Done', null, null],
    ['Failed', null, null],
    ['Canceled', null, null],
  ];
  it('has a row for every unit state', () => {
    expect(table.map((r) => r[0])).toEqual(UNIT_STATES);
  });
  it.each(table)('%s → restartable %s, else %s', (state, restartable, notRestartable) => {
    expect(sweepTarget(state, true)).toBe(restartable);
    expect(sweepTarget(state, false)).toBe(notRestartable);
  });
});

describe('reschedule', () => {
  const allowed = new Set<UnitState>([
    'New',
    'PendingInputStaging',
    'StagingInput',
    'PendingExecution',
    'Scheduling',
    'Executing',
    'PendingOutputStaging',
    'StagingOutput',
  ]);
  it.each(UNIT_STATES)('from %s', (s) => {
    const r = reschedule(s);
    if (allowed.has(s)) {
      expect(r).toEqual({ ok: true, state: 'Unscheduled', passed: ['Unscheduled'] });
    } else {
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toContain(s);
    }
  });
  it('allows every non-final sweep move to UNSCHEDULED, refusing only the no-op', () => {
    for (const s of UNIT_STATES) {
      for (const restartable of [true, false]) {
        const t = sweepTarget(s, restartable);
        if (t === 'Unscheduled' && s !== 'Unscheduled') expect(reschedule(s).ok).toBe(true);
        if (t === 'Failed') expect(progress(unitModel, s, t).ok).toBe(true);
      }
    }
  });
});
