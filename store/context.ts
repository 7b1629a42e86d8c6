/**
 * What every store module is given: counted table access, a clock, and the bound on parallel writes.
 */
import { GetCommand, type GetCommandOutput } from '@aws-sdk/lib-dynamodb';
import type { Db } from './db.ts';
import { PK } from './keys.ts';
import type { StoreObserver } from './observer.ts';
import type { Item } from './records.ts';

/** Shared by the store's modules. */
export interface StoreContext {
  db: Db;
  /** Current time as ISO 8601 (injectable for tests). */
  now(): string;
  /** Parallel conditional writes in bulk operations. */
  concurrency: number;
  /** Told of every creation, state change and refusal (metrics); none by default. */
  observer?: StoreObserver;
}

/** Strongly consistent read of one item; undefined when absent. */
export async function getItem(ctx: StoreContext, pk: string): Promise<Item | undefined> {
  const out = await ctx.db.send<GetCommandOutput>(
    'GetItem',
    new GetCommand({ TableName: ctx.db.tableName, Key: { [PK]: pk }, ConsistentRead: true }),
  );
  return out.Item;
}
