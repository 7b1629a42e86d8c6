/**
 * The agent's configuration file (`agent.json` in the pilot sandbox, mode 0600), written by the launcher.
 * It holds the pilot secret: the agent's only credential, good for its own pilot's routes and nothing else.
 */
import { readFileSync } from 'node:fs';
import { AGENT_SPAWNERS, type AgentSpawner } from '../core/spawners.ts';
import type { LaunchConfig } from './launch-methods.ts';

/** What the launcher writes into `agent.json`. */
export interface AgentConfig {
  /** Base URL of the Sortie HTTP API (API Gateway in AWS, 127.0.0.1 locally). */
  apiUrl: string;
  sessionId: string;
  pilotId: string;
  /** Bearer token `<sid>.<pid>.<secret>` for the agent routes. */
  token: string;
  /** Absolute pilot sandbox; units run in `<sandbox>/<unit uid>`. */
  sandbox: string;
  /** Cores the pilot asked for; the allocation may show more. */
  cores: number;
  gpus?: number;
  /** Walltime in seconds: the agent ends itself `shutdownMarginSeconds` before it. */
  runtimeSeconds: number;
  shutdownMarginSeconds?: number;
  /** Resource key, exported to units as RP_RESOURCE. */
  resource?: string;
  /** The resource config's launch methods (`launchMethods`); without it every unit is forked (FORK). */
  launchMethods?: LaunchConfig;
  /** GPUs per node from the resource config (batch systems other than SLURM do not say). */
  gpusPerNode?: number;
  /** Variables listing a unit's GPU ids; default CUDA_VISIBLE_DEVICES. */
  gpuEnv?: string[];
  /** The resource allows pilots bigger than their allocation, and GPUs shared by units (test beds). */
  oversubscribe?: boolean;
  /** The pilot description's `cleanup`: empty the sandbox at the end, keeping the logs. */
  cleanup?: boolean;
  /** The resource config's `agentSpawner` (default PERSISTENT; see core/resources.ts). */
  spawner?: AgentSpawner;
  /** The resource config's `armAhead` (default true; agent/arm-ahead.ts). */
  armAhead?: boolean;
}

/** Reads and checks `agent.json`; a broken file ends the agent with a message naming the field. */
export function readConfig(file: string): AgentConfig {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  for (const k of ['apiUrl', 'sessionId', 'pilotId', 'token', 'sandbox'] as const) {
    if (typeof raw[k] !== 'string' || raw[k] === '')
      throw new Error(`${file}: '${k}' must be a non-empty string`);
  }
  for (const k of ['cores', 'runtimeSeconds'] as const) {
    if (typeof raw[k] !== 'number' || !(Number(raw[k]) > 0))
      throw new Error(`${file}: '${k}' must be a positive number`);
  }
  if (raw.gpus !== undefined && !(Number.isInteger(raw.gpus) && Number(raw.gpus) >= 0))
    throw new Error(`${file}: 'gpus' must be a non-negative integer`);
  if (raw.spawner !== undefined && !AGENT_SPAWNERS.includes(raw.spawner as AgentSpawner))
    throw new Error(
      `${file}: 'spawner' must be one of ${AGENT_SPAWNERS.join(', ')}, got ${JSON.stringify(raw.spawner)}`,
    );
  if (raw.armAhead !== undefined && typeof raw.armAhead !== 'boolean')
    throw new Error(`${file}: 'armAhead' must be true or false, got ${JSON.stringify(raw.armAhead)}`);
  const lm = raw.launchMethods as { order?: unknown } | undefined;
  if (lm !== undefined && !(Array.isArray(lm?.order) && lm.order.every((m) => typeof m === 'string')))
    throw new Error(`${file}: 'launchMethods.order' must be a list of method names`);
  return raw as unknown as AgentConfig;
}
