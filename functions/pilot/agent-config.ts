/** The agent's configuration (`agent.json`), shared by the launch step and the endpoint's poll. */
import type { ResourceConfig } from '../../core/resources.ts';
import { ENV } from '../../stacks/manifest.ts';
import type { PilotRecord } from '../../store/index.ts';
import { env } from '../lib/aws.ts';
import { pilotSecret } from '../lib/secrets.ts';

/**
 * What the agent of `pilot` needs: where the API is, its pilot token (the same secret on every attempt, see
 * pilotSecret), its size and walltime, and what of the resource config it uses to place and launch units
 * (it cannot read user-added resource configs).
 */
export function agentConfigOf(pilot: PilotRecord, rc: ResourceConfig): Record<string, unknown> {
  const d = pilot.description;
  return {
    apiUrl: env(ENV.apiUrl),
    sessionId: pilot.sessionId,
    pilotId: pilot.uid,
    token: `${pilot.sessionId}~${pilot.uid}~${pilotSecret(pilot.sessionId, pilot.uid)}`,
    cores: d.cores,
    ...(d.gpus !== undefined ? { gpus: d.gpus } : {}),
    runtimeSeconds: d.runtime * 60,
    resource: d.resource,
    launchMethods: rc.launchMethods,
    gpusPerNode: rc.gpusPerNode,
    gpuEnv: rc.gpuEnv,
    oversubscribe: rc.oversubscribe,
    spawner: rc.agentSpawner,
    armAhead: rc.armAhead,
    cleanup: d.cleanup === true,
  };
}
