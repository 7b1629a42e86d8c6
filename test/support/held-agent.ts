/**
 * A pilot whose real agent's pulls wait in a proxy (drop-proxy.ts with `hold` on the pull route), and a
 * caller of the agent routes with that pilot's own token: the test pulls, starts and reports as its agent
 * would, while the agent itself gets nothing until the proxy lets its pulls go.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type ComputePilot, type PilotManager, PilotState } from '../../client/index.ts';
import { type Backend, startBackend } from '../../local/backend.ts';
import { ENV } from '../../stacks/manifest.ts';
import { until } from '../e2e.ts';
import { dropProxy } from './drop-proxy.ts';

/** The embedded backend with a proxy in front of its agent routes (see {@link backendWithHeldPulls}). */
export interface HeldPullsBackend {
  backend: Backend;
  proxy: Awaited<ReturnType<typeof dropProxy>>;
  close(): Promise<void>;
}

/**
 * An embedded backend whose agents reach it through a proxy that holds their pulls (until the test
 * releases them), with short leases (1 s) and no scheduled reconciler: the test runs it, so nothing is
 * returned before it asks.
 */
export async function backendWithHeldPulls(): Promise<HeldPullsBackend> {
  const backend = await startBackend({ leaseSeconds: 1, scheduleSeconds: 0 });
  const proxy = await dropProxy(new URL(backend.apiUrl), [], { hold: /^POST \/agent\/pull$/ });
  process.env[ENV.apiUrl] = proxy.url;
  return {
    backend,
    proxy,
    close: async () => {
      await proxy.close();
      await backend.close();
    },
  };
}

/** One answer of an agent route: its status and JSON body. */
export interface AgentAnswer {
  status: number;
  body: Record<string, unknown>;
}

/**
 * Submits a 2-core local.localhost pilot, waits until it is ACTIVE and its agent's pull is held by `proxy`,
 * and returns it with `agentCall`, which posts to `apiUrl` (the API itself, not the proxy) with its token.
 */
export async function heldAgentPilot(
  pmgr: PilotManager,
  apiUrl: string,
  proxy: { readonly holding: number },
): Promise<{ pilot: ComputePilot; agentCall: (route: string, body: unknown) => Promise<AgentAnswer> }> {
  const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
  await pilot.wait({ state: PilotState.ACTIVE, timeout: 60 });
  await until('the agent pulls (held)', () => (proxy.holding > 0 ? true : undefined), 30_000);
  const { token } = JSON.parse(readFileSync(path.join(pilot.sandbox ?? '', 'agent.json'), 'utf8'));
  const agentCall = async (route: string, body: unknown): Promise<AgentAnswer> => {
    const res = await fetch(`${apiUrl}${route}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return { pilot, agentCall };
}
