/**
 * Who starts units on a node (a resource config's `agentSpawner`, RP's `agent_spawner`): a name list
 * apart from core/resources.ts so that the agent bundle, which reads it, does not carry the schemas.
 */

/** PERSISTENT: a long-lived spawner per node (agent/spawner.ts); POPEN: the agent's own spawn per unit. */
export const AGENT_SPAWNERS = ['PERSISTENT', 'POPEN'] as const;

/** One of {@link AGENT_SPAWNERS}. */
export type AgentSpawner = (typeof AGENT_SPAWNERS)[number];
