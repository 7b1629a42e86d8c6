/**
 * Batch reads and writes with DynamoDB's limits (25 writes, 100 keys per request), parallel requests,
 * and retries of what DynamoDB leaves unprocessed (it may, under load, without failing the request), under
 * the store's retry policy (core/retry.ts).
 */
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  BatchWriteCommand,
  type BatchWriteCommandOutput,
} from '@aws-sdk/lib-dynamodb';
import { DatabaseError } from '../core/errors.ts';
import { RETRY_POLICIES, Transient, withRetry } from '../core/retry.ts';
import type { Db } from './db.ts';
import { PK } from './keys.ts';
import type { Item } from './records.ts';

const WRITE_BATCH = 25;
const GET_BATCH = 100;
/** Parallel batch requests: enough to hide latency without tripping throttling on a fresh table. */
const BATCH_CONCURRENCY = 8;

/** Run `fn` over `items` with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Split into chunks of `size`. */
export function chunk<T>(xs: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

/** Retries the remainder DynamoDB left unprocessed, under the store's retry policy. */
async function untilProcessed<R>(
  kind: 'writes' | 'reads',
  first: R[],
  send: (requests: R[]) => Promise<R[]>,
): Promise<void> {
  let left = first;
  await withRetry(
    async () => {
      left = await send(left);
      if (left.length) throw new Transient(`${left.length} ${kind} left unprocessed`);
    },
    {
      policy: RETRY_POLICIES.store,
      exhausted: (_last, spent) =>
        new DatabaseError(`${left.length} ${kind} left unprocessed after ${spent.attempts} attempts`),
    },
  );
}

/**
 * Put all `items` (unconditionally: BatchWriteItem has no conditions), 25 per request, in parallel.
 * @throws DatabaseError when items remain unprocessed after the retries.
 */
export async function batchPut(db: Db, items: readonly Item[]): Promise<void> {
  await mapLimit(chunk(items, WRITE_BATCH), BATCH_CONCURRENCY, (batch) =>
    untilProcessed(
      'writes',
      batch.map((Item) => ({ PutRequest: { Item } })),
      async (requests) => {
        const out = await db.send<BatchWriteCommandOutput>(
          'BatchWriteItem',
          new BatchWriteCommand({ RequestItems: { [db.tableName]: requests } }),
        );
        return (out.UnprocessedItems?.[db.tableName] ?? []) as typeof requests;
      },
    ),
  );
}

/**
 * Delete the items of `pks` (unconditionally; a key that is gone already is no error), 25 per request, in
 * parallel.
 * @throws DatabaseError when deletes remain unprocessed after the retries.
 */
export async function batchDelete(db: Db, pks: readonly string[]): Promise<void> {
  await mapLimit(chunk([...new Set(pks)], WRITE_BATCH), BATCH_CONCURRENCY, (batch) =>
    untilProcessed(
      'writes',
      batch.map((pk) => ({ DeleteRequest: { Key: { [PK]: pk } } })),
      async (requests) => {
        const out = await db.send<BatchWriteCommandOutput>(
          'BatchWriteItem',
          new BatchWriteCommand({ RequestItems: { [db.tableName]: requests } }),
        );
        return (out.UnprocessedItems?.[db.tableName] ?? []) as typeof requests;
      },
    ),
  );
}

/**
 * Strongly consistent reads of `pks`, 100 per request, in parallel. Missing items are absent from the map.
 * @throws DatabaseError when keys remain unprocessed after the retries.
 */
export async function batchGet(db: Db, pks: readonly string[]): Promise<Map<string, Item>> {
  const found = new Map<string, Item>();
  const unique = [...new Set(pks)];
  await mapLimit(chunk(unique, GET_BATCH), BATCH_CONCURRENCY, (batch) =>
    untilProcessed(
      'reads',
      batch.map((pk): Record<string, unknown> => ({ [PK]: pk })),
      async (keys) => {
        const out = await db.send<BatchGetCommandOutput>(
          'BatchGetItem',
          new BatchGetCommand({ RequestItems: { [db.tableName]: { Keys: keys, ConsistentRead: true } } }),
        );
        for (const item of out.Responses?.[db.tableName] ?? []) found.set(String(item[PK]), item);
        return out.UnprocessedKeys?.[db.tableName]?.Keys ?? [];
      },
    ),
  );
  return found;
}
