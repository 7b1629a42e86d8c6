/**
 * Resource configurations a session added (RP's `Session.add_resource_config`): one item per config
 * under the session (pk `<sid>#resource:<key>`), listed through the byParent index under `<sid>#resources`.
 * Configs are stored as the JSON text of their validated form; whoever reads them validates them again
 * with the same schema (functions/lib/resources.ts), so the store needs no knowledge of it.
 */
import { batchPut } from './batch.ts';
import type { StoreContext } from './context.ts';
import { changedKey, entityPk, PK } from './keys.ts';
import { queryByParent } from './query.ts';
import type { Item } from './records.ts';

/** One stored config of a session. */
export interface SessionResourceConfig {
  /** The full resource key, `<site>.<name>`. */
  key: string;
  /** The config as stored (the JSON of a validated config). */
  config: unknown;
  /** When it was (last) added. */
  created: string;
}

/** byParent partition of a session's resource configs (listed, and purged with the session). */
export const resourcesParent = (sessionId: string) => `${sessionId}#resources`;

/** Stores (or replaces) configs of a session, one item each. */
export async function putResourceConfigs(
  ctx: StoreContext,
  sessionId: string,
  configs: ReadonlyArray<readonly [string, unknown]>,
): Promise<void> {
  const now = ctx.now();
  const items: Item[] = configs.map(([key, config]) => ({
    [PK]: entityPk(sessionId, `resource:${key}`),
    kind: 'resource',
    sessionId,
    key,
    config: JSON.stringify(config),
    created: now,
    parent: resourcesParent(sessionId),
    changed: changedKey(now, key),
  }));
  await batchPut(ctx.db, items);
}

/** Every config the session added, in the order they were (last) added. */
export async function listResourceConfigs(
  ctx: StoreContext,
  sessionId: string,
): Promise<SessionResourceConfig[]> {
  const out: SessionResourceConfig[] = [];
  let next: string | undefined;
  do {
    const page = await queryByParent(ctx, resourcesParent(sessionId), next ? { next } : {}, toConfig);
    out.push(...page.items);
    next = page.next;
  } while (next);
  return out;
}

function toConfig(item: Item): SessionResourceConfig {
  return { key: String(item.key), config: JSON.parse(String(item.config)), created: String(item.created) };
}
