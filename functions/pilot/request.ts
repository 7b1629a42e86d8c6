/** Builds the launcher's view of a pilot (shared by launch and finalize). */

import { BadParameter } from '../../core/errors.ts';
import { ENV } from '../../stacks/manifest.ts';
import type { PilotRecord } from '../../store/index.ts';
import { sessionResources } from '../lib/resources.ts';
import { unseal } from '../lib/secrets.ts';
import { store } from '../lib/store.ts';
import { EndpointLauncher } from './endpoint-launcher.ts';
import { launcherFor } from './launcher/index.ts';
import type { HostKeyStore } from './launcher/ssh.ts';
import type { Launcher, LaunchRequest, LaunchResult, SshCredentials } from './launcher/types.ts';

/** The launch request of a pilot; `agentConfig` only matters to launch itself. */
export function launchRequest(
  pilot: PilotRecord,
  agentConfig: Record<string, unknown> = {},
  credentials?: SshCredentials,
): LaunchRequest {
  const d = pilot.description;
  return {
    sessionId: pilot.sessionId,
    pilotId: pilot.uid,
    resource: d.resource,
    description: {
      runtime: d.runtime,
      cores: d.cores,
      ...(d.gpus !== undefined ? { gpus: d.gpus } : {}),
      ...(d.nodes !== undefined ? { nodes: d.nodes } : {}),
      ...(d.memory !== undefined ? { memory: d.memory } : {}),
      ...(d.queue !== undefined ? { queue: d.queue } : {}),
      ...(d.project !== undefined ? { project: d.project } : {}),
      ...(d.sandbox !== undefined ? { sandbox: d.sandbox } : {}),
      ...(d.accessSchema !== undefined ? { accessSchema: d.accessSchema } : {}),
    },
    agentBundle: process.env[ENV.agentBundle] ?? '',
    agentConfig,
    ...(credentials ? { credentials } : {}),
  };
}

/** The access schema a pilot uses: its own `accessSchema`, else its resource's default. */
export async function accessOf(pilot: PilotRecord): Promise<string> {
  return pilot.description.accessSchema ?? (await resourceOf(pilot)).defaultSchema;
}

/** The job a launch left behind, if any. */
export function launchedJob(pilot: PilotRecord): LaunchResult | undefined {
  if (!pilot.jobId || !pilot.sandbox) return undefined;
  const nodes = pilot.resourceDetail?.nodes;
  return { jobId: pilot.jobId, sandbox: pilot.sandbox, ...(nodes?.length ? { nodes } : {}) };
}

/**
 * The resource config of a pilot, from its session's registry (shipped sites plus the session's own
 * configs). Validated at submit, so it exists unless the shipped sites changed since.
 */
export async function resourceOf(pilot: PilotRecord) {
  return (await sessionResources(pilot.sessionId)).get(pilot.description.resource);
}

/** Host keys trusted on first use, kept in the table so that every Lambda container agrees. */
const hostKeys: HostKeyStore = {
  get: (hostPort) => store().getHostKey(hostPort),
  set: (hostPort, keyLine) => store().putHostKeyIfAbsent(hostPort, keyLine),
};

/**
 * The launcher of a pilot and its request, with the session's SSH context opened (only in memory, only
 * here) for resources reached over SSH.
 */
export async function launcherOf(
  pilot: PilotRecord,
  agentConfig: Record<string, unknown> = {},
): Promise<{ launcher: Launcher; req: LaunchRequest }> {
  const resource = await resourceOf(pilot);
  const schema = pilot.description.accessSchema ?? resource.defaultSchema;
  // MFA sites: the user's endpoint on the login node does the work; no credentials are opened here.
  if (schema === 'endpoint') {
    if (!resource.schemas.endpoint)
      throw new BadParameter(`resource '${pilot.description.resource}' has no 'endpoint' access schema`);
    return { launcher: new EndpointLauncher(), req: launchRequest(pilot, agentConfig) };
  }
  let credentials: SshCredentials | undefined;
  if (schema === 'ssh') {
    const sealed = await store().getContext(pilot.sessionId, pilot.description.resource);
    if (sealed) {
      const c = JSON.parse(unseal(sealed)) as SshCredentials;
      if (!c.userKey && !c.userPass) {
        // Sortie cannot read the user's ~/.ssh as RP did: say what would let it in.
        throw new BadParameter(
          `no SSH key or password for '${pilot.description.resource}'${c.userId ? ` (the session's context has only userId '${c.userId}')` : ''}: add a key made by session.generateKey('${pilot.description.resource}', { userId }), or a Context('ssh', { userId, userKey }) with your private key`,
          { obj: pilot.uid },
        );
      }
      credentials = {
        ...(c.userId ? { userId: c.userId } : {}),
        ...(c.userKey ? { userKey: c.userKey } : {}),
        ...(c.userPass ? { userPass: c.userPass } : {}),
      };
    } else if (!resource.schemas.ssh?.user) {
      throw new BadParameter(
        `no SSH credentials for '${pilot.description.resource}': add a Context('ssh', { userId, userKey }) to the session first`,
        { obj: pilot.uid },
      );
    }
  }
  return {
    launcher: launcherFor(resource, schema, { hostKeyStore: hostKeys }),
    req: launchRequest(pilot, agentConfig, credentials),
  };
}
