/**
 * CloudWatch metrics of a workload: the handlers publish Embedded Metric Format lines (Powertools
 * Metrics) counted from the store's own changes; the embedded backend captures them. The counts must
 * equal what the workload did, state for state, and each line must be EMF that CloudWatch accepts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CANCELED, DONE, FAILED, PilotManager, Session, UnitManager } from '../client/index.ts';
import { countsOfTransition } from '../functions/lib/metrics.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { emfValues } from '../local/metrics.ts';
import { METRICS } from '../stacks/manifest.ts';
import { until } from './e2e.ts';

const N = METRICS.names;
let backend: Backend;

beforeAll(async () => {
  backend = await startBackend();
}, 60_000);

afterAll(async () => {
  await backend?.close();
});

describe('metrics of a workload (EMF)', () => {
  it('counts units submitted, claimed, started, done, failed, canceled and the pilot end, once each', async () => {
    const session = await Session.create({ endpoint: backend.apiUrl });
    try {
      const pmgr = await PilotManager.create(session);
      const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
      const umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
      const ok = await umgr.submitUnits(Array.from({ length: 10 }, () => ({ executable: '/bin/true' })));
      const bad = await umgr.submitUnits([{ executable: '/bin/false' }, { executable: '/bin/false' }]);
      const long = await umgr.submitUnits({ executable: '/bin/sleep', arguments: ['600'] });
      await long.wait({ state: 'Executing', timeout: 60 });
      await umgr.cancelUnits(long.uid);
      expect(await umgr.waitUnits({ uids: ok.map((u) => u.uid), timeout: 60 })).toEqual(Array(10).fill(DONE));
      expect(await umgr.waitUnits({ uids: bad.map((u) => u.uid), timeout: 60 })).toEqual([FAILED, FAILED]);
      expect(await long.wait({ timeout: 60 })).toBe(CANCELED);
      await pmgr.cancelPilots(pilot.uid);
      await pilot.wait({ timeout: 60 });
      // Finalize publishes its sweep count when it returns, after the pilot's final state is written.
      const totals = await until(
        'the pilot end in the metrics',
        () => {
          const t = backend.metrics.totals();
          return t[N.unitsSwept] !== undefined ? t : undefined;
        },
        60_000,
      );
      expect(totals).toMatchObject({
        [N.pilotsSubmitted]: 1,
        [N.pilotsActive]: 1,
        [N.pilotsCanceled]: 1,
        [N.unitsSubmitted]: 13,
        [N.unitsClaimed]: 13,
        [N.unitsStarted]: 13,
        [N.unitsDone]: 10,
        [N.unitsFailed]: 2,
        [N.unitsCanceled]: 1,
        // Every unit was final before the pilot ended: the sweep moved none.
        [N.unitsSwept]: 0,
      });
      expect(totals[N.claimsRefused] ?? 0).toBe(0);
      expect(totals[N.pilotsFailed]).toBeUndefined();
    } finally {
      await session.close({ timeout: 30 });
    }
  }, 120_000);

  it('publishes EMF: namespace Sortie, dimension service, every value declared', () => {
    expect(backend.metrics.lines.length).toBeGreaterThan(0);
    for (const line of backend.metrics.lines) {
      const doc = JSON.parse(line);
      const [directive] = doc._aws.CloudWatchMetrics;
      expect(directive.Namespace).toBe(METRICS.namespace);
      expect(directive.Dimensions).toEqual([['service']]);
      expect(doc.service).toBe(METRICS.service);
      expect(Number.isInteger(doc._aws.Timestamp)).toBe(true);
      for (const { Name, Unit } of directive.Metrics) {
        expect(Object.values(N)).toContain(Name);
        expect(Unit).toBe('Count');
        expect(typeof doc[Name]).toBe('number');
      }
    }
  });
});

describe('what a state change counts as', () => {
  it('counts each state entered, and a filled-in Executing as a start', () => {
    expect(countsOfTransition('unit', ['Executing', 'Done'])).toEqual([N.unitsStarted, N.unitsDone]);
    expect(countsOfTransition('unit', ['Scheduling'])).toEqual([N.unitsClaimed]);
    expect(countsOfTransition('unit', ['StagingInput'])).toEqual([N.unitsClaimed]);
    // A staged unit's start fills in Scheduling: not a second claim.
    expect(countsOfTransition('unit', ['PendingExecution', 'Scheduling', 'Executing'])).toEqual([
      N.unitsStarted,
    ]);
    expect(countsOfTransition('unit', ['PendingExecution'])).toEqual([]);
    expect(countsOfTransition('pilot', ['Launching', 'Active'])).toEqual([N.pilotsActive]);
    expect(countsOfTransition('pilot', ['Failed'])).toEqual([N.pilotsFailed]);
    expect(countsOfTransition('unit', [])).toEqual([]);
  });

  it('sums a list of values in one EMF line, as CloudWatch does', () => {
    const line = JSON.stringify({
      _aws: {
        Timestamp: 1,
        CloudWatchMetrics: [{ Namespace: 'Sortie', Dimensions: [[]], Metrics: [{ Name: 'A' }] }],
      },
      A: [1, 2, 3],
    });
    expect(emfValues(line)).toEqual({ A: 6 });
  });
});
