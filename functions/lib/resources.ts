/**
 * The resource registry a session sees: the shipped sites and aliases plus the configs the session added
 * (stored one item each under the session). Every resource lookup of the backend goes through it, so a
 * session's configs serve all its pilots' launches and stay invisible to other sessions.
 */
import { ResourceRegistry } from '../../core/resource-registry.ts';
import { parseResourceConfig } from '../../core/resources.ts';
import { store } from './store.ts';

let shipped: ResourceRegistry | undefined;

/** The shipped registry of this container, validated once; never handed out, only copied. */
function shippedRegistry(): ResourceRegistry {
  shipped ??= ResourceRegistry.shipped();
  return shipped;
}

/**
 * The registry of a session: a fresh copy of the shipped one with the session's stored configs on top
 * (re-validated with the same schema as when they were added).
 */
export async function sessionResources(sessionId: string): Promise<ResourceRegistry> {
  const registry = shippedRegistry().copy();
  const stored = await store().listResourceConfigs(sessionId);
  registry.set(stored.map((c) => [c.key, parseResourceConfig(c.key, c.config)] as const));
  return registry;
}
