import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Context, PilotManager, PilotState, Session, UnitManager, UnitState } from '../client/index.ts';
import { orphanSweepEverywhere } from '../functions/pilot/launcher/orphans.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { ENV } from '../stacks/manifest.ts';
import { agentPids, unitProcesses, until } from './e2e.ts';
import { onLogin, readCluster, relayApi } from './support/cluster.ts';

const cl = readCluster();
const skip = 'skip' in cl ? cl.skip : undefined;
const env = 'env' in cl ? cl.env : {};

describe.skipIf(skip !== undefined)(`orphans on the cluster${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let backend: Backend;
  let session: Session;
  let relay: Awaited<ReturnType<typeof relayApi>> | undefined;
  let apiUrlBefore: string | undefined;

  beforeAll(async () => {
    // A heartbeat budget far above the job checks: the pilot ends by a job check, as it would on a site.
    backend = await startBackend({ heartbeatSeconds: 60, jobCheckSeconds: 2, activateTimeoutSeconds: 120 });
    relay = await relayApi(backend.apiUrl, env.SORTIE_CLUSTER_HOST_IP ?? '');
    apiUrlBefore = process.env[ENV.apiUrl];
    process.env[ENV.apiUrl] = relay.url;
    session = await Session.create({ endpoint: backend.apiUrl });
    await session.addContext(
      new Context('ssh', { userId: env.SORTIE_CLUSTER_USER ?? '', userKey: env.SORTIE_CLUSTER_KEY ?? '' }),
    );
  }, 60_000);

  afterAll(async () => {
    await session?.close({ timeout: 30 }).catch(() => {});
    await backend?.close();
    if (apiUrlBefore === undefined) delete process.env[ENV.apiUrl];
    else process.env[ENV.apiUrl] = apiUrlBefore;
    await relay?.close();
  });

  it("the pilot's end sweeps every node over SSH from the login node, one line per node it reached", async () => {
    const nodes = (env.SORTIE_CLUSTER_NODES ?? '').split(' ').filter(Boolean);
    expect(nodes).toHaveLength(3);
    // The login node's own line, then one per compute node, each swept there (its hostname says so);
    // a node that does not exist is skipped.
    const out = await onLogin(env, orphanSweepEverywhere('rp.session.none', 'pilot.none', [...nodes, 'cn9']));
    const seen = out
      .trim()
      .split('\n')
      .map((l) => l.split(': ')[0]);
    expect(seen.sort()).toEqual(['login', ...nodes].sort());
    expect(out).not.toMatch(/cn9/);
  });

  it('an agent SIGKILLed on a 3-node pilot leaves no unit process on any node once the pilot is final', async () => {
    const resource = 'local.slurm-cluster-ssh-orphans';
    const base = await session.getResourceConfig('local.slurm-cluster');
    await session.addResourceConfig({
      [resource]: {
        ...base,
        launchMethods: { ...base.launchMethods, order: ['SSH', 'FORK'] },
        jobCheckSeconds: 1,
        maxJobCheckSeconds: 2,
      },
    });
    const pmgr = await PilotManager.create(session);
    const pilot = await pmgr.submitPilots({ resource, runtime: 10, cores: 12 });
    onTestFinished(() => pilot.cancel().catch(() => {}));
    await pilot.wait({ state: [PilotState.ACTIVE, PilotState.FAILED], timeout: 90 });
    expect(pilot.state, pilot.log.join('\n')).toBe(PilotState.ACTIVE);
    const nodes = pilot.resourceDetail?.nodes ?? [];
    expect(nodes).toHaveLength(3);
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    // One whole-node unit per node: two of them started over SSH, outside the job's process tracking.
    const units = await umgr.submitUnits(
      [0, 1, 2].map(() => ({ executable: '/bin/sleep', arguments: ['600'], cores: 4 })),
    );
    await umgr.waitUnits({ state: [UnitState.EXECUTING, UnitState.FAILED], timeout: 60 });
    expect(new Set(units.map((u) => u.executionLocations[0]))).toEqual(new Set(nodes));
    await until(
      'a unit process on every node',
      () => (unitProcesses(session.uid).length >= 3 ? true : undefined),
      30_000,
      200,
    );
    const agents = agentPids(session.uid, pilot.uid);
    expect(agents).toHaveLength(1);
    process.kill(agents[0] as number, 'SIGKILL');

    expect(await pilot.wait({ timeout: 90 })).toBe(PilotState.FAILED);
    expect(pilot.log.join('\n')).toMatch(/ended while the pilot was active/);
    await until(
      'no unit process on any node',
      () => (unitProcesses(session.uid).length ? undefined : true),
      20_000,
      200,
    );
    for (const u of units) {
      await u.wait({ timeout: 30 });
      expect(u.state).toBe(UnitState.FAILED);
    }
  }, 240_000);
});
