/**
 * The agent's last answered pull, in an item of its own beside the pilot (pk `<sid>#<pilot>#pull`): a
 * retry of that pull (its answer was lost) gets the same units. It used to be a field of the pilot item,
 * so every pull rewrote the whole pilot (kilobytes of description, log and commands, plus its byParent
 * entry moved twice): the bench counted that as the largest share of the control plane's write units.
 * This item is small, carries no index attribute, and is overwritten by each pull.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { getItem, type StoreContext } from './context.ts';
import { entityPk, PK } from './keys.ts';

/**
 * What a retry of the pull needs: its id, the units it claimed (written beside the claims, so it may name
 * some whose claim failed: a retry keeps only those held under the lease) and that lease.
 */
export interface PullRecord {
  id: string;
  uids: string[];
  lease?: string;
}

/** pk of a pilot's pull record (purged with the pilot's side items, store/purge.ts). */
export function pullPk(sessionId: string, pilotId: string): string {
  return `${entityPk(sessionId, pilotId)}#pull`;
}

/** Remembers a pull before its answer goes out (one small write per pull). */
export async function recordPull(
  ctx: StoreContext,
  sessionId: string,
  pilotId: string,
  pull: PullRecord,
): Promise<void> {
  await ctx.db.send(
    'PutItem',
    new PutCommand({
      TableName: ctx.db.tableName,
      Item: { [PK]: pullPk(sessionId, pilotId), kind: 'pull', ...pull },
    }),
  );
}

/** The pilot's last recorded pull, or undefined. */
export async function lastPull(
  ctx: StoreContext,
  sessionId: string,
  pilotId: string,
): Promise<PullRecord | undefined> {
  const item = await getItem(ctx, pullPk(sessionId, pilotId));
  if (!item) return undefined;
  return {
    id: String(item.id),
    uids: (item.uids as string[]) ?? [],
    ...(typeof item.lease === 'string' ? { lease: item.lease } : {}),
  };
}
