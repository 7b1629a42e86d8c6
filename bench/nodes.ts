/**
 * Figure 10 (issue 14): the same null-unit workload on 1, 2 and 3 nodes of the multi-node SLURM test bed
 * (scripts/testbed.sh cluster up), through the per-node executors. What must stay flat as nodes are added
 * is the work per unit that the design keeps on one place: control-plane requests per unit (everything the
 * embedded backend's meter counts: AWS requests and HTTP API requests) and the agent's own CPU per unit
 * (its utime + stime from /proc, read on this host: the nodes are namespaces sharing its process table).
 * The rate is reported too, but the three "nodes" share this machine's cores, so it cannot grow here.
 */

import { Context, PilotManager, PilotState, Session, UnitManager, UnitState } from '../client/index.ts';
import { startBackend } from '../local/backend.ts';
import { ENV } from '../stacks/manifest.ts';
import { agentPids } from '../test/e2e.ts';
import { readCluster, relayApi } from '../test/support/cluster.ts';
import { procCpuMs } from './agent-stub.ts';
import { installMeter, type MeterSnapshot, resetMeter, snapshotMeter } from './meter.ts';

/** One run: `units` null units on a pilot of `nodes` whole nodes. */
export interface NodesRun {
  nodes: number;
  units: number;
  /** Units per second, first submit → all DONE seen by the client. */
  rate: number;
  /** Metered control-plane requests (AWS + HTTP API) per unit. */
  requestsPerUnit: number;
  /** The agent's CPU (user + system) per unit. */
  agentCpuMsPerUnit: number;
  /** Per request kind, per unit. */
  perKind: Record<string, number>;
}

/** Cores per node of the test cluster (resources/local.json local.slurm-cluster). */
const CORES_PER_NODE = 4;

function requestsOf(s: MeterSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(s.awsRequests)) out[k] = v;
  for (const [k, v] of Object.entries(s.http)) out[`HTTP ${k}`] = v.requests;
  return out;
}

/**
 * Runs `units` null units on 1, 2 and 3 nodes in turn, each on its own pilot; throws when the cluster is
 * not up or a unit does not end DONE.
 */
export async function nodesRuns(units: number, log: (s: string) => void): Promise<NodesRun[]> {
  const cl = readCluster();
  if ('skip' in cl) throw new Error(`10: the multi-node test bed is not up (${cl.skip})`);
  const env = cl.env;
  const backend = await startBackend({
    heartbeatSeconds: 30,
    jobCheckSeconds: 5,
    activateTimeoutSeconds: 120,
  });
  installMeter();
  // The agent reaches the API through a relay on the bridge (see test/support/cluster.ts).
  const relay = await relayApi(backend.apiUrl, env.SORTIE_CLUSTER_HOST_IP ?? '');
  const before = process.env[ENV.apiUrl];
  process.env[ENV.apiUrl] = relay.url;
  const session = await Session.create({ endpoint: backend.apiUrl, name: 'bench-nodes' });
  const runs: NodesRun[] = [];
  try {
    await session.addContext(
      new Context('ssh', { userId: env.SORTIE_CLUSTER_USER ?? '', userKey: env.SORTIE_CLUSTER_KEY ?? '' }),
    );
    const pmgr = await PilotManager.create(session);
    for (const nodes of [1, 2, 3]) {
      const pilot = await pmgr.submitPilots({
        resource: 'local.slurm-cluster',
        runtime: 20,
        cores: nodes * CORES_PER_NODE,
      });
      try {
        await pilot.wait({ state: PilotState.ACTIVE, timeout: 120, throwOnTimeout: true });
        const umgr = await UnitManager.create(session, 'direct_submission');
        await umgr.addPilots(pilot);
        // Warm: the executors are up and the agent's code paths compiled before the counters start.
        const warm = await umgr.submitUnits(
          Array.from({ length: nodes * CORES_PER_NODE * 2 }, () => ({ executable: '/bin/true' })),
        );
        await umgr.waitUnits({ uids: warm.map((u) => u.uid), timeout: 120, throwOnTimeout: true });
        const [pid] = agentPids(session.uid, pilot.uid);
        if (pid === undefined) throw new Error(`10: no agent process of ${pilot.uid} found in /proc`);
        const cpu0 = procCpuMs(pid).self;
        resetMeter();
        const t0 = performance.now();
        const batch = await umgr.submitUnits(
          Array.from({ length: units }, () => ({ executable: '/bin/true' })),
        );
        const states = await umgr.waitUnits({
          uids: batch.map((u) => u.uid),
          timeout: 900,
          throwOnTimeout: true,
        });
        const seconds = (performance.now() - t0) / 1000;
        const snap = snapshotMeter();
        const cpu = procCpuMs(pid).self - cpu0;
        const notDone = states.filter((s) => s !== UnitState.DONE).length;
        if (notDone) throw new Error(`10: ${notDone} of ${units} units not DONE on ${nodes} node(s)`);
        const used = new Set(batch.map((u) => u.executionLocations[0])).size;
        if (used !== nodes) throw new Error(`10: units ran on ${used} node(s), not ${nodes}`);
        const kinds = requestsOf(snap);
        const perKind = Object.fromEntries(Object.entries(kinds).map(([k, v]) => [k, v / units]));
        const run: NodesRun = {
          nodes,
          units,
          rate: units / seconds,
          requestsPerUnit: Object.values(kinds).reduce((a, b) => a + b, 0) / units,
          agentCpuMsPerUnit: cpu / units,
          perKind,
        };
        log(
          `10: ${nodes} node(s): ${run.rate.toFixed(0)} units/s, ${run.requestsPerUnit.toFixed(2)} requests/unit, agent ${run.agentCpuMsPerUnit.toFixed(2)} ms CPU/unit`,
        );
        runs.push(run);
        umgr.close();
      } finally {
        await pilot.cancel().catch(() => {});
        await pilot.wait({ timeout: 60 }).catch(() => {});
      }
    }
  } finally {
    await session.close({ timeout: 30 }).catch(() => {});
    await backend.close();
    if (before === undefined) delete process.env[ENV.apiUrl];
    else process.env[ENV.apiUrl] = before;
    await relay.close();
  }
  return runs;
}
