/**
 * A lost pull answer strands nothing (issue 11): the pull claims units and deletes their messages before
 * the agent has the answer. A proxy of our own between the agent and the embedded backend loses the first
 * pull answer that carries units; the agent retries the same pull (same pull id) and gets the same units,
 * so every unit runs, once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { ENV } from '../stacks/manifest.ts';
import { dropProxy } from './support/drop-proxy.ts';

let backend: Backend;
let proxy: Awaited<ReturnType<typeof dropProxy>>;

beforeAll(async () => {
  backend = await startBackend();
  proxy = await dropProxy(new URL(backend.apiUrl), [
    { request: /^POST \/agent\/pull$/, when: (body) => body.includes('"uid"') },
  ]);
  // Agents are given the API URL at launch: theirs goes through the proxy, the SDK's does not.
  process.env[ENV.apiUrl] = proxy.url;
});
afterAll(async () => {
  await proxy?.close();
  await backend?.close();
});

describe('lost pull answer', () => {
  it('the retried pull gets the same units: all DONE, each run once, none stranded in Scheduling', async () => {
    const session = await Session.create({ endpoint: backend.apiUrl, name: 'pull-retry' });
    try {
      const pmgr = await PilotManager.create(session);
      const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
      const umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
      const units = await umgr.submitUnits(
        Array.from({ length: 20 }, (_, i) => ({ executable: '/bin/echo', arguments: [`unit ${i}`] })),
      );
      expect(await umgr.waitUnits({ timeout: 120 })).toEqual(units.map(() => UnitState.DONE));
      expect(proxy.dropped).toEqual(['POST /agent/pull']);
      for (const [i, u] of units.entries()) {
        expect(u.stdout, u.uid).toBe(`unit ${i}\n`);
        expect(
          u.stateHistory.filter((e) => e.state === UnitState.EXECUTING),
          u.uid,
        ).toHaveLength(1);
      }
    } finally {
      await session.close({ timeout: 30 });
    }
  }, 180_000);
});
