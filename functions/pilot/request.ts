/** Builds the launcher's view of a pilot (shared by launch and finalize). */
import { getResourceConfig } from '../../core/resources.ts';
import { ENV } from '../../stacks/manifest.ts';
import type { PilotRecord } from '../../store/index.ts';
import type { LaunchRequest, LaunchResult, SshCredentials } from './launcher/types.ts';

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

/** The job a launch left behind, if any. */
export function launchedJob(pilot: PilotRecord): LaunchResult | undefined {
  return pilot.jobId && pilot.sandbox ? { jobId: pilot.jobId, sandbox: pilot.sandbox } : undefined;
}

/** The resource config of a pilot (validated at submit, so it exists). */
export function resourceOf(pilot: PilotRecord) {
  return getResourceConfig(pilot.description.resource);
}
