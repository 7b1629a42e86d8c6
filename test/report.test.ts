/** core/report.ts on hand-made records: placement on cores, busy cores, figures and the cost's lower bound. */
import { describe, expect, it } from 'vitest';
import { PRICES, plainItemBytes, writeUnits } from '../core/pricing.ts';
import { area, busyCores, costLowerBound, figures, pilotCores, timeline, writesOf } from '../core/report.ts';
import type { PilotRecord, UnitRecord } from '../core/wire.ts';

const T = Date.parse('2026-01-01T00:00:00.000Z');
const at = (s: number) => new Date(T + s * 1000).toISOString();

function pilot(cores: number, activeAt: number, endAt: number): PilotRecord {
  return {
    uid: 'pilot.0000',
    pmgr: 'pmgr.0000',
    state: 'Canceled',
    stateHistory: [
      { state: 'PendingLaunch', time: at(0) },
      { state: 'Launching', time: at(0) },
      { state: 'PendingActive', time: at(1) },
      { state: 'Active', time: at(activeAt) },
      { state: 'Canceled', time: at(endAt) },
    ],
    description: { resource: 'local.localhost', runtime: 10, cores },
    resource: 'local.localhost',
    log: [],
    resourceDetail: {
      nodes: ['n1'],
      coresPerNode: cores,
      cores,
      nodeDetails: [{ name: 'n1', cores, gpus: 0 }],
    },
    changed: at(endAt),
  };
}

function unit(
  i: number,
  cores: number,
  start: number,
  end: number,
  state: 'Done' | 'Failed' = 'Done',
): UnitRecord {
  return {
    uid: `unit.${String(i).padStart(6, '0')}`,
    umgr: 'umgr.0000',
    state,
    stateHistory: [
      { state: 'New', time: at(0) },
      { state: 'Scheduling', time: at(1) },
      { state: 'Executing', time: at(start) },
      { state, time: at(end + 0.5) }, // the write comes after the agent's end time
    ],
    description: { executable: '/bin/true', cores } as UnitRecord['description'],
    pilot: 'pilot.0000',
    execLocations: ['n1'],
    submitted: at(0),
    started: at(start),
    finished: at(end),
    log: [],
    changed: at(end),
  };
}

describe('sortie report arithmetic', () => {
  // A 4-core pilot active from 2 s to 12 s; units: two 1-core from 2-6 s, one 2-core 3-7 s, one 1-core 6-10 s.
  const pilots = [pilot(4, 2, 12)];
  const units = [unit(0, 1, 2, 6), unit(1, 1, 2, 6), unit(2, 2, 3, 7), unit(3, 1, 6, 10, 'Failed')];
  const now = T + 60_000;

  it('puts each unit on the lowest free cores of its node, never two on one core at once', () => {
    const t = timeline(pilots, units, now);
    expect(t.nodes).toEqual([{ node: 'pilot.0000 n1', cores: 4 }]);
    expect(t.bars.map((b) => [b.uid, b.lane, b.cores])).toEqual([
      ['unit.000000', 0, 1],
      ['unit.000001', 1, 1],
      ['unit.000002', 2, 2],
      ['unit.000003', 0, 1], // lane 0 is free again at 6 s
    ]);
    expect([t.t0, t.t1]).toEqual([T + 2000, T + 10_000]); // the agent's times, not the later writes
  });

  it('counts busy cores over time against the pilot cores while active', () => {
    const t = timeline(pilots, units, now);
    expect(busyCores(t)).toEqual([
      [T + 2000, 2],
      [T + 3000, 4],
      [T + 6000, 3],
      [T + 7000, 1],
      [T + 10_000, 0],
    ]);
    expect(pilotCores(pilots, now)).toEqual([
      [T + 2000, 4],
      [T + 12_000, 0],
    ]);
    expect(area(busyCores(t), T, T + 20_000)).toBe((2 * 1 + 4 * 3 + 3 * 1 + 1 * 3) * 1000);
  });

  it('figures: units/s over the span, utilization of the active pilot cores, time to first unit', () => {
    const f = figures(pilots, units, now);
    expect(f.byState).toEqual({ Done: 3, Failed: 1 });
    expect(f.spanSeconds).toBe(8);
    expect(f.unitsPerSecond).toBe(4 / 8);
    expect(f.busyCoreSeconds).toBe(20);
    expect(f.pilotCoreSeconds).toBe(40);
    expect(f.utilizationPercent).toBe(50);
    expect(f.timeToFirstUnitSeconds).toBe(2);
  });

  it('cost lower bound: one write per distinct history time, on the table and the byParent index, and the pilot transitions', () => {
    expect(writesOf(units[0]?.stateHistory ?? [])).toBe(4);
    const { usage, cost, writes } = costLowerBound(pilots, units);
    expect(writes).toBe(4 * 4 + 4); // the pilot's Launching shares its write with PendingLaunch
    const wru =
      units.reduce((n, u) => n + 4 * 2 * writeUnits(plainItemBytes(u as never)), 0) +
      4 * 2 * writeUnits(plainItemBytes(pilots[0] as never));
    expect(usage.dynamo.wru).toBe(wru);
    expect(usage.sfn.transitions).toBe(5);
    expect(cost?.usd).toBeCloseTo(wru * PRICES.dynamoWru + 5 * PRICES.sfnTransition, 12);
  });
});

describe('sortie report on incomplete records', () => {
  const now = T + 60_000;

  it('falls back to the state times when the agent sent no start or end, and runs a live unit until now', () => {
    const u = unit(0, 1, 2, 6);
    delete u.started;
    delete u.finished;
    const live = { ...unit(1, 1, 3, 9), state: 'Executing' as const };
    live.stateHistory = live.stateHistory.slice(0, 3);
    delete live.finished;
    const never: UnitRecord = { ...unit(2, 1, 0, 0), state: 'Scheduling' };
    delete never.started;
    never.stateHistory = never.stateHistory.slice(0, 2);
    const t = timeline([pilot(2, 1, 30)], [u, live as UnitRecord, never], now);
    expect(t.bars.map((b) => [b.uid, b.start, b.end])).toEqual([
      ['unit.000000', T + 2000, T + 6500], // EXECUTING's write, then the final state's write
      ['unit.000001', T + 3000, now],
    ]);
  });

  it('takes a pilot without node details from its node list, and a unit on an unknown node opens a row', () => {
    const p = pilot(2, 1, 30);
    p.resourceDetail = { nodes: ['a', 'b'], coresPerNode: 2, cores: 4 };
    const elsewhere = { ...unit(0, 2, 2, 4), execLocations: ['z'] };
    const nowhere: UnitRecord = { ...unit(1, 1, 2, 4), execLocations: [] };
    delete nowhere.pilot;
    const t = timeline([p], [elsewhere, nowhere], now);
    expect(t.nodes).toEqual([
      { node: 'pilot.0000 a', cores: 2 },
      { node: 'pilot.0000 b', cores: 2 },
      { node: 'pilot.0000 z', cores: 2 },
      { node: '? ?', cores: 1 },
    ]);
    const bare = pilot(2, 1, 30);
    delete bare.resourceDetail;
    expect(timeline([bare], [], now).nodes).toEqual([]);
  });

  it('figures of a session where nothing ran, and a pilot never active or still active', () => {
    const idle = pilot(2, 1, 30);
    idle.stateHistory = idle.stateHistory.slice(0, 3);
    const f = figures([idle], [], now);
    expect(f).toMatchObject({
      units: 0,
      unitsPerSecond: 0,
      utilizationPercent: 0,
      timeToFirstUnitSeconds: undefined,
    });
    const running = pilot(2, 1, 30);
    running.stateHistory = running.stateHistory.slice(0, 4);
    expect(pilotCores([running], now)).toEqual([
      [T + 1000, 2],
      [now, 0],
    ]);
    expect(costLowerBound([running], []).cost).toBeUndefined();
  });
});
