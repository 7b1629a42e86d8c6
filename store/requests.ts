/**
 * Client request tokens: the record that makes a creating request happen once. The first request with a
 * token claims it with a conditional PutItem (`attribute_not_exists`), runs, and stores its result on the
 * claim; a repeat finds the claim and gets that result back instead of creating anything.
 *
 * Claims do not live forever. Each carries `expires` (epoch seconds, the table's TTL attribute: DynamoDB
 * deletes it some time after; dynalite never does, so a claim past it counts as absent and is overwritten)
 * and, while pending, `takeoverAt`: a first attempt that died (a Lambda killed at its timeout, a crash)
 * leaves its claim pending with no one to settle it, and a repeat after `takeoverAt` takes the claim over
 * and runs the request itself instead of answering 504 forever. Each claim has an `attempt` id, so a
 * first attempt that was only slow cannot settle or drop the claim another attempt holds.
 *
 * Why a conditional put and not Powertools Idempotency: the claim is one item in the table that already
 * holds everything (no second table; dynalite runs the same code as DynamoDB), its key is
 * scoped to the session so one session can never see another's results, and a route stores only what it
 * needs to answer again (uids, re-read on a repeat), so a 10,000-unit submission stays far below the
 * 400 KB item limit where Powertools would cache the whole response.
 */
import { randomUUID } from 'node:crypto';
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
  /** Pending only: from this time (ms since the epoch) a repeat may take the claim over. */
  takeoverAt?: number;
}

/**
 * Seconds a claim is kept (`expires`, the table's TTL attribute): SDK retries come within minutes, and a
 * day also covers a script rerun by hand with the same token the same day.
 */
export const CLAIM_TTL_SECONDS = 24 * 3600;

/**
 * Seconds after which a pending claim may be taken over: past the timeout of every function that creates
 * (API 29 s, event submissions 60 s), so its first attempt has certainly been stopped by then.
 */
export const PENDING_TAKEOVER_SECONDS = 120;

/** A claim won: `attempt` guards its settle and release; `takenOver` when it replaced a dead attempt's. */
export interface ClaimWon {
  claimed: true;
  attempt: string;
  takenOver: boolean;
}

/** pk of a claim; `key` is scoped and hashed by the caller (a session id and a hash of the token). */
const claimPk = (key: string) => `request:${key}`;

/**
 * Claims `key` for a request: when there is no claim, when the one there expired, or when it is pending
 * past its `takeoverAt` for the same request (`fingerprint`). Returns the claim won, else the claim as it
 * stands.
 * @throws DatabaseError
 */
export async function claimRequest(
  ctx: StoreContext,
  key: string,
  fingerprint: string,
  options: { takeoverSeconds?: number } = {},
): Promise<ClaimWon | { claimed: false; claim: RequestClaim }> {
  for (;;) {
    const now = ctx.now();
    const nowMs = Date.parse(now);
    const attempt = randomUUID();
    try {
      await ctx.db.send(
        'PutItem',
        new PutCommand({
          TableName: ctx.db.tableName,
          Item: {
            [PK]: claimPk(key),
            kind: 'request',
            status: 'pending',
            fingerprint,
            created: now,
            attempt,
            expires: Math.floor(nowMs / 1000) + CLAIM_TTL_SECONDS,
            takeoverAt: nowMs + (options.takeoverSeconds ?? PENDING_TAKEOVER_SECONDS) * 1000,
          },
          ConditionExpression:
            'attribute_not_exists(#pk) OR #exp < :nowS OR (#s = :pending AND #fp = :fp AND #to < :nowMs)',
          ExpressionAttributeNames: {
            '#pk': PK,
            '#exp': 'expires',
            '#s': 'status',
            '#fp': 'fingerprint',
            '#to': 'takeoverAt',
          },
          ExpressionAttributeValues: {
            ':nowS': Math.floor(nowMs / 1000),
            ':pending': 'pending',
            ':fp': fingerprint,
            ':nowMs': nowMs,
          },
        }),
      );
      return { claimed: true, attempt, takenOver: false };
    } catch (e) {
      if (!(e instanceof ConditionFailed)) throw e;
    }
    const claim = await getRequest(ctx, key);
    // Deleted (its first request failed cleanly) or expired between our put and read: claim it again.
    if (claim) return { claimed: false, claim };
  }
}

/** True when a pending claim may be taken over at `nowMs` (its first attempt is dead). */
export function canTakeOver(claim: RequestClaim, nowMs: number): boolean {
  return claim.status === 'pending' && claim.takeoverAt !== undefined && claim.takeoverAt < nowMs;
}

/** The claim of `key`, if any and not expired (strongly consistent). */
export async function getRequest(ctx: StoreContext, key: string): Promise<RequestClaim | undefined> {
  const item: Item | undefined = await getItem(ctx, claimPk(key));
  if (item?.kind !== 'request') return undefined;
  if (typeof item.expires === 'number' && item.expires < Math.floor(Date.parse(ctx.now()) / 1000))
    return undefined;
  return {
    status: item.status as RequestClaim['status'],
    fingerprint: String(item.fingerprint),
    created: String(item.created),
    ...(item.result === undefined ? {} : { result: item.result }),
    ...(typeof item.takeoverAt === 'number' && item.status === 'pending'
      ? { takeoverAt: item.takeoverAt }
      : {}),
  };
}

/**
 * Ends a claim: `done` with the answer to repeat, or `failed` with the reason. Only the attempt that holds
 * the claim settles it; returns false when another attempt took it over meanwhile (nothing written).
 */
export async function settleRequest(
  ctx: StoreContext,
  key: string,
  attempt: string,
  status: 'done' | 'failed',
  result: unknown,
): Promise<boolean> {
  try {
    await ctx.db.send(
      'UpdateItem',
      new UpdateCommand({
        TableName: ctx.db.tableName,
        Key: { [PK]: claimPk(key) },
        UpdateExpression: 'SET #s = :s, #r = :r REMOVE #to',
        ConditionExpression: '#a = :a',
        ExpressionAttributeNames: { '#s': 'status', '#r': 'result', '#to': 'takeoverAt', '#a': 'attempt' },
        ExpressionAttributeValues: { ':s': status, ':r': result, ':a': attempt },
      }),
    );
    return true;
  } catch (e) {
    if (e instanceof ConditionFailed) return false;
    throw e;
  }
}

/**
 * Drops a claim whose request failed before it created anything, so that a repeat runs again; only the
 * attempt that holds it (another's claim stays).
 */
export async function releaseRequest(ctx: StoreContext, key: string, attempt: string): Promise<void> {
  try {
    await ctx.db.send(
      'DeleteItem',
      new DeleteCommand({
        TableName: ctx.db.tableName,
        Key: { [PK]: claimPk(key) },
        ConditionExpression: '#a = :a',
        ExpressionAttributeNames: { '#a': 'attempt' },
        ExpressionAttributeValues: { ':a': attempt },
      }),
    );
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
  }
}
