/**
 * Per-session usage counted by the Lambdas (functions/lib/usage.ts) on the embedded backend: each request
 * is charged to the session whose token it carries, nothing of another session's workload leaks in, and a
 * workload's counts cover at least what its records prove was written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DONE, PilotManager, Session, UnitManager } from '../client/index.ts';
import { costLowerBound } from '../core/report.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { until } from './e2e.ts';

let backend: Backend;

beforeAll(async () => {
  backend = await startBackend();
}, 60_000);

afterAll(async () => {
  await backend?.close();
});

describe('usage counted per session', () => {
  it('charges each request to its own session, and a workload at least what its records prove', async () => {
    const idle = await Session.create({ endpoint: backend.apiUrl });
    const busy = await Session.create({ endpoint: backend.apiUrl });
    try {
      // The read writes the counts before it answers: it sees every request but itself.
      const first = (await idle.usage()).counters;
      expect(first).toMatchObject({ httpRequests: 1, httpBilled: 1, lambdaRequests: 1, sqsCalls: 0 });
      expect(first.dynamoWru).toBeGreaterThanOrEqual(1); // the session's own item
      expect(first.lambdaMbMs).toBeGreaterThan(0);

      const pmgr = await PilotManager.create(busy);
      const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
      const umgr = await UnitManager.create(busy, 'direct_submission');
      await umgr.addPilots(pilot);
      const units = await umgr.submitUnits(Array.from({ length: 20 }, () => ({ executable: '/bin/true' })));
      expect(await umgr.waitUnits({ uids: units.map((u) => u.uid), timeout: 90 })).toEqual(
        Array(20).fill(DONE),
      );
      await pmgr.cancelPilots(pilot.uid);
      await pilot.wait({ timeout: 60 });

      // The idle session's counts moved by its second read only.
      const second = (await idle.usage()).counters;
      expect(second).toMatchObject({ httpRequests: 2, lambdaRequests: 2, sqsCalls: 0, sfnTransitions: 0 });

      // The pilot's state is final before its Finalize step returns: wait for that step's counts.
      const { counters, cost } = await until(
        'the pilot end counted',
        async () => {
          const u = await busy.usage(20);
          return u.counters.sfnTransitions > 0 ? u : undefined;
        },
        60_000,
        200,
      );
      const proven = costLowerBound(
        [pilot.asDict()],
        units.map((u) => u.asDict()),
      );
      // Every write the records prove (table + index) was counted, and more: reads, polls, pulls, SQS.
      expect(counters.dynamoWru).toBeGreaterThanOrEqual(proven.usage.dynamo.wru);
      expect(counters.dynamoRru).toBeGreaterThan(0);
      expect(counters.sqsCalls).toBeGreaterThan(0);
      // The SDK's and the agent's requests went through the HTTP API, the pilot's steps did not.
      expect(counters.httpRequests).toBeGreaterThan(0);
      expect(counters.lambdaRequests).toBeGreaterThan(counters.httpRequests);
      // Finalize counted its execution: at least one transition per pilot state the record shows.
      expect(counters.sfnTransitions).toBeGreaterThanOrEqual(pilot.asDict().stateHistory.length);
      expect(cost?.usd).toBeGreaterThan(proven.cost?.usd ?? 0);
      expect(cost?.lines.map((l) => l.item)).toContain('DynamoDB writes');
    } finally {
      await busy.close({ timeout: 30 });
      await idle.close({ timeout: 30 });
    }
  }, 180_000);
});
