/**
 * Client request tokens: the record that makes a creating request happen once. The first request with a
 * token claims it with a conditional PutItem (`attribute_not_exists`), runs, and stores its result on the
 * claim; a repeat finds the claim and gets that result back instead of creating anything.
 *
 * Why a conditional put and not Powertools Idempotency: the claim is one item in the table that already
 * holds everything (no second table, no TTL — dynalite runs the same code as DynamoDB), its key is
 * scoped to the session so one session can never see another's results, and a route stores only what it
 * needs to answer again (uids, re-read on a repeat), so a 10,000-unit submission stays far below the
 * 400 KB item limit where Powertools would cache the whole response.
 */
import { DeleteCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { getItem, type StoreContext } from './context.ts';
import { ConditionFailed } from './db.ts';
import { PK } from './keys.ts';
import type { Item } from './records.ts';

/** A request token's claim as stored. */
export interface RequestClaim {
  /** `pending` while the first request runs; `done` with its result; `failed` when it failed midway. */
  status: 'pending' | 'done' | 'failed';
  /** What the request was (route and a hash of its body): a token reused for another request is refused. */
  fingerprint: string;
  created: string;
  /** The route's saved answer (`done`), or why it failed (`failed`). */
  result?: unknown;
}

/** pk of a claim; `key` is scoped and hashed by the caller (a session id and a hash of the token). */
const claimPk = (key: string) => `request:${key}`;

/**
 * Claims `key` for a request. Returns `{ claimed: true }` for the first, else the claim as it stands.
 * @throws DatabaseError
 */
export async function claimRequest(
  ctx: StoreContext,
  key: string,
  fingerprint: string,
): Promise<{ claimed: true } | { claimed: false; claim: RequestClaim }> {
  try {
    await ctx.db.send(
      'PutItem',
      new PutCommand({
        TableName: ctx.db.tableName,
        Item: { [PK]: claimPk(key), kind: 'request', status: 'pending', fingerprint, created: ctx.now() },
        ConditionExpression: 'attribute_not_exists(#pk)',
        ExpressionAttributeNames: { '#pk': PK },
      }),
    );
    return { claimed: true };
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
  }
  const claim = await getRequest(ctx, key);
  // Deleted between our put and read (its first request failed cleanly): claim it again.
  return claim ? { claimed: false, claim } : claimRequest(ctx, key, fingerprint);
}

/** The claim of `key`, if any (strongly consistent). */
export async function getRequest(ctx: StoreContext, key: string): Promise<RequestClaim | undefined> {
  const item: Item | undefined = await getItem(ctx, claimPk(key));
  if (item?.kind !== 'request') return undefined;
  return {
    status: item.status as RequestClaim['status'],
    fingerprint: String(item.fingerprint),
    created: String(item.created),
    ...(item.result === undefined ? {} : { result: item.result }),
  };
}

/** Ends a claim: `done` with the answer to repeat, or `failed` with the reason. */
export async function settleRequest(
  ctx: StoreContext,
  key: string,
  status: 'done' | 'failed',
  result: unknown,
): Promise<void> {
  await ctx.db.send(
    'UpdateItem',
    new UpdateCommand({
      TableName: ctx.db.tableName,
      Key: { [PK]: claimPk(key) },
      UpdateExpression: 'SET #s = :s, #r = :r',
      ExpressionAttributeNames: { '#s': 'status', '#r': 'result' },
      ExpressionAttributeValues: { ':s': status, ':r': result },
    }),
  );
}

/** Drops a claim whose request failed before it created anything, so that a repeat runs again. */
export async function releaseRequest(ctx: StoreContext, key: string): Promise<void> {
  await ctx.db.send(
    'DeleteItem',
    new DeleteCommand({ TableName: ctx.db.tableName, Key: { [PK]: claimPk(key) } }),
  );
}
