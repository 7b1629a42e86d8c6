/**
 * Paged queries on the byParent and byPilot indexes, and the change cursor.
 *
 * A cursor is the `changed` value (`<ISO time>#<uid>`) of the last item returned; `since: cursor` returns
 * items written after it. Writers' clocks are not perfectly ordered (several Lambdas) and indexes are
 * eventually consistent, so a poller should pass {@link rewindCursor}(cursor, a few seconds) and drop
 * items it has already seen at the same `changed`.
 */
import { QueryCommand, type QueryCommandOutput } from '@aws-sdk/lib-dynamodb';
import { BadParameter, DatabaseError } from '../core/errors.ts';
import type { Page } from '../core/wire.ts';
import { TABLE } from '../stacks/manifest.ts';
import { batchGet } from './batch.ts';
import type { StoreContext } from './context.ts';
import { PK } from './keys.ts';
import type { Item } from './records.ts';

export type { Page } from '../core/wire.ts';

/** Paging options of list calls. */
export interface PageOptions {
  /** Only items changed after this cursor. */
  since?: string;
  /** Page size (DynamoDB also stops at 1 MB). */
  limit?: number;
  /** `next` of the previous page (undefined for the first, so a pagination loop can pass it as it is). */
  next?: string | undefined;
}

/** A cursor `ms` milliseconds earlier, to poll with an overlap. */
export function rewindCursor(cursor: string, ms: number): string {
  const time = Date.parse(cursor.split('#')[0] ?? '');
  return Number.isNaN(time) ? '' : new Date(time - ms).toISOString();
}

/** Query byParent (children of a manager, or a session's managers), ordered by `changed`. */
export async function queryByParent<R>(
  ctx: StoreContext,
  parent: string,
  options: PageOptions,
  toRecord: (item: Item) => R,
): Promise<Page<R>> {
  const idx = TABLE.indexes.byParent;
  const names: Record<string, string> = { '#p': idx.partitionKey };
  const values: Record<string, unknown> = { ':p': parent };
  let condition = '#p = :p';
  if (options.since) {
    names['#c'] = idx.sortKey;
    values[':c'] = options.since;
    condition += ' AND #c > :c';
  }
  const page = await query(ctx, idx.name, condition, names, values, options, toRecord);
  const last = page.raw.at(-1);
  return withNext(
    { items: page.items, cursor: last ? String(last[idx.sortKey]) : (options.since ?? '') },
    page.next,
  );
}

/** Query byPilot (units bound to a pilot), ordered by pk; the index holds keys only, so items are fetched. */
export async function queryByPilot<R>(
  ctx: StoreContext,
  pilotKey: string,
  options: Omit<PageOptions, 'since'>,
  toRecord: (item: Item) => R,
): Promise<Page<R>> {
  const idx = TABLE.indexes.byPilot;
  const page = await query(
    ctx,
    idx.name,
    '#p = :p',
    { '#p': idx.partitionKey },
    { ':p': pilotKey },
    options,
    (item) => item,
  );
  const found = await batchGet(
    ctx.db,
    page.items.map((i) => String(i[PK])),
  );
  // An item deleted between the query and the read is simply absent.
  const items = page.items.flatMap((i) => {
    const full = found.get(String(i[PK]));
    return full ? [toRecord(full)] : [];
  });
  return withNext({ items, cursor: '' }, page.next);
}

/**
 * Query byParent for the named attributes only (ProjectionExpression), in `changed` order: walks that need
 * keys and a field or two, not whole records (the index projects ALL, so a plain query reads every byte).
 */
export async function queryByParentAttrs(
  ctx: StoreContext,
  parent: string,
  attrs: readonly string[],
  options: Omit<PageOptions, 'since'>,
): Promise<Page<Item>> {
  const idx = TABLE.indexes.byParent;
  const page = await query(
    ctx,
    idx.name,
    '#p = :p',
    { '#p': idx.partitionKey },
    { ':p': parent },
    options,
    (item) => item,
    attrs,
  );
  return withNext({ items: page.items, cursor: '' }, page.next);
}

async function query<R>(
  ctx: StoreContext,
  index: string,
  condition: string,
  names: Record<string, string>,
  values: Record<string, unknown>,
  options: PageOptions,
  toRecord: (item: Item) => R,
  attrs?: readonly string[],
): Promise<{ items: R[]; raw: Item[]; next: string | undefined }> {
  const projected = attrs?.map((a, i) => [`#a${i}`, a] as const) ?? [];
  const command = new QueryCommand({
    TableName: ctx.db.tableName,
    IndexName: index,
    KeyConditionExpression: condition,
    ExpressionAttributeNames: { ...names, ...Object.fromEntries(projected) },
    ExpressionAttributeValues: values,
    ...(projected.length ? { ProjectionExpression: projected.map(([n]) => n).join(', ') } : {}),
    ...(options.limit ? { Limit: options.limit } : {}),
    ...(options.next ? { ExclusiveStartKey: decodeNext(options.next) } : {}),
  });
  let out: QueryCommandOutput;
  try {
    out = await ctx.db.send<QueryCommandOutput>('Query', command);
  } catch (e) {
    // A token that decodes to an object but is not a key of this query is the caller's mistake, not ours.
    if (options.next && e instanceof DatabaseError && (e.cause as Error)?.name === 'ValidationException')
      throw new BadParameter(`not a page token of this list: ${JSON.stringify(options.next)}`, { cause: e });
    throw e;
  }
  const raw = out.Items ?? [];
  const next = out.LastEvaluatedKey
    ? Buffer.from(JSON.stringify(out.LastEvaluatedKey)).toString('base64url')
    : undefined;
  return { items: raw.map(toRecord), raw, next };
}

function withNext<T>(page: Page<T>, next: string | undefined): Page<T> {
  return next === undefined ? page : { ...page, next };
}

function decodeNext(next: string): Record<string, unknown> {
  try {
    const key: unknown = JSON.parse(Buffer.from(next, 'base64url').toString());
    if (typeof key === 'object' && key !== null && !Array.isArray(key)) return key as Record<string, unknown>;
  } catch {
    // fall through to the typed error
  }
  throw new BadParameter(`not a page token: ${JSON.stringify(next)}`);
}
