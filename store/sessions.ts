/**
 * Sessions: the session item holds the token hash, the open/closed flag and the per-session uid counters.
 */
import { randomUUID } from 'node:crypto';
import { PutCommand, UpdateCommand, type UpdateCommandOutput } from '@aws-sdk/lib-dynamodb';
import { BadParameter, DoesNotExist, IncorrectState } from '../core/errors.ts';
import { emptyUsage, USAGE_COUNTERS, type UsageCounters } from '../core/usage.ts';
import { getItem, type StoreContext } from './context.ts';
import { ConditionFailed } from './db.ts';
import { Update } from './expr.ts';
import {
  changedKey,
  checkSessionId,
  counterAttr,
  formatUid,
  PK,
  PURGE_SESSIONS,
  parseUid,
  type UidKind,
} from './keys.ts';
import { type Item, type SessionRecord, stripKeys } from './records.ts';

/** What a new session needs. */
export interface NewSession {
  /** SHA-256 of the session token's secret. */
  tokenHash: string;
  /** RP-like id; `rp.session.<uuid>` when absent. */
  sessionId?: string;
}

/**
 * Create a session (PutItem, refused if the id exists).
 * @throws BadParameter (bad id), IncorrectState (id taken), DatabaseError
 */
export async function createSession(ctx: StoreContext, input: NewSession): Promise<SessionRecord> {
  const sessionId = input.sessionId ?? `rp.session.${randomUUID()}`;
  checkSessionId(sessionId);
  const now = ctx.now();
  const record: SessionRecord = {
    sessionId,
    state: 'open',
    tokenHash: input.tokenHash,
    created: now,
    changed: changedKey(now, sessionId),
  };
  try {
    await ctx.db.send(
      'PutItem',
      new PutCommand({
        TableName: ctx.db.tableName,
        Item: { ...record, [PK]: sessionId, kind: 'session' },
        ConditionExpression: 'attribute_not_exists(#pk)',
        ExpressionAttributeNames: { '#pk': PK },
      }),
    );
  } catch (e) {
    if (e instanceof ConditionFailed)
      throw new IncorrectState(`session ${sessionId} exists`, { obj: sessionId });
    throw e;
  }
  return record;
}

/** @throws DoesNotExist, DatabaseError */
export async function getSession(ctx: StoreContext, sessionId: string): Promise<SessionRecord> {
  const item = await getItem(ctx, sessionId);
  if (item?.kind !== 'session')
    throw new DoesNotExist(`session ${sessionId} does not exist`, { obj: sessionId });
  return sessionOf(item);
}

/**
 * Mark a session closed (idempotent: closing a closed session keeps its first close time). With `purgeAt`
 * (a close with cleanup) the session is also marked for the reconciler's purge: it gets `purgeAt`, kept
 * from the first such close (a repeated close never pushes the purge later), and joins the partition of
 * sessions to purge ({@link PURGE_SESSIONS}).
 * @throws DoesNotExist, DatabaseError
 */
export function closeSession(
  ctx: StoreContext,
  sessionId: string,
  options: { purgeAt?: string } = {},
): Promise<SessionRecord> {
  const now = ctx.now();
  const u = new Update().set('state', 'closed').setIfAbsent('closed', now);
  if (options.purgeAt !== undefined)
    u.setIfAbsent('purgeAt', options.purgeAt).set('pilotKey', PURGE_SESSIONS);
  return updateSession(ctx, sessionId, now, u);
}

/**
 * Record a reconnect (RP: `Session(session_uid=…)` updates `last_reconnect`).
 * @throws DoesNotExist, DatabaseError
 */
export function markReconnect(ctx: StoreContext, sessionId: string): Promise<SessionRecord> {
  const now = ctx.now();
  return updateSession(ctx, sessionId, now, new Update().set('lastReconnect', now));
}

/**
 * Add counted control-plane usage to a session (one UpdateItem of ADDs, so concurrent Lambdas never lose
 * each other's counts). Closed sessions still count (their last pilots end after the close); a deleted
 * session is DoesNotExist. `changed` is not stamped: usage is not a change the session's owner waits for.
 * @throws DoesNotExist, DatabaseError
 */
export async function addSessionUsage(
  ctx: StoreContext,
  sessionId: string,
  usage: Partial<UsageCounters>,
): Promise<void> {
  const u = new Update().when((c) => `${c.path('kind')} = ${c.value('session')}`);
  let any = false;
  for (const k of USAGE_COUNTERS) {
    const n = usage[k] ?? 0;
    if (n === 0) continue;
    u.add(`${USAGE_PREFIX}${k}`, n);
    any = true;
  }
  if (!any) return;
  try {
    await update(ctx, sessionId, u);
  } catch (e) {
    if (e instanceof ConditionFailed)
      throw new DoesNotExist(`session ${sessionId} does not exist`, { obj: sessionId });
    throw e;
  }
}

/** Prefix of the usage counters' attributes on a session item. */
const USAGE_PREFIX = 'usage_';

/** A session item as its record: the flat `usage_*` counters gathered into `usage`. */
export function sessionOf(item: Item): SessionRecord {
  const record = stripKeys<SessionRecord & Record<string, unknown>>(item);
  const usage = emptyUsage();
  let counted = false;
  for (const k of USAGE_COUNTERS) {
    const v = record[`${USAGE_PREFIX}${k}`];
    delete record[`${USAGE_PREFIX}${k}`];
    if (v === undefined) continue;
    usage[k] = Number(v);
    counted = true;
  }
  return counted ? { ...record, usage } : record;
}

/** Applies `u` to an existing session item, stamping `changed`; a missing session is DoesNotExist. */
async function updateSession(
  ctx: StoreContext,
  sessionId: string,
  now: string,
  u: Update,
): Promise<SessionRecord> {
  u.set('changed', changedKey(now, sessionId)).when((c) => `${c.path('kind')} = ${c.value('session')}`);
  try {
    return sessionOf(await update(ctx, sessionId, u));
  } catch (e) {
    if (e instanceof ConditionFailed)
      throw new DoesNotExist(`session ${sessionId} does not exist`, { obj: sessionId });
    throw e;
  }
}

/**
 * Reserve `n` consecutive uids of `kind` in one UpdateItem (ADD on the session's counter), e.g.
 * `unit.000000` … `unit.000099`. Refused once the session is closed.
 * @throws BadParameter (n), DoesNotExist, IncorrectState (closed), DatabaseError
 */
export async function reserveIds(
  ctx: StoreContext,
  sessionId: string,
  kind: UidKind,
  n: number,
): Promise<string[]> {
  if (!Number.isInteger(n) || n < 0)
    throw new BadParameter(`uid count must be a non-negative integer, got ${n}`);
  if (n === 0) return [];
  const attr = counterAttr(kind);
  const u = new Update()
    .add(attr, n)
    .set('changed', changedKey(ctx.now(), sessionId))
    .when((c) => `${c.path('state')} = ${c.value('open')} AND ${c.path('kind')} = ${c.value('session')}`);
  let item: Item;
  try {
    item = await update(ctx, sessionId, u, true);
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
    const session = await getSession(ctx, sessionId);
    throw new IncorrectState(`session ${sessionId} is ${session.state}`, {
      obj: sessionId,
      current: session,
    });
  }
  const end = Number(item[attr]);
  return Array.from({ length: n }, (_, i) => formatUid(kind, end - n + i));
}

/**
 * Gives back uids of `kind` reserved by {@link reserveIds} and never used (the request that reserved them
 * created nothing): the session's counter moves back by their number, but only while they are still its
 * last ones, so that no uid reserved since is ever handed out twice. True when they were given back; false
 * when a later reservation came first (the uids then stay unused: a gap, never a duplicate).
 * @throws DatabaseError
 */
export async function returnIds(
  ctx: StoreContext,
  sessionId: string,
  kind: UidKind,
  uids: readonly string[],
): Promise<boolean> {
  if (uids.length === 0) return true;
  const end = parseUid(kind, uids.at(-1) as string) + 1;
  const attr = counterAttr(kind);
  const u = new Update()
    .add(attr, -uids.length)
    .when((c) => `${c.path(attr)} = ${c.value(end)} AND ${c.path('kind')} = ${c.value('session')}`);
  try {
    await update(ctx, sessionId, u, true);
    return true;
  } catch (e) {
    if (e instanceof ConditionFailed) return false;
    throw e;
  }
}

async function update(
  ctx: StoreContext,
  pk: string,
  u: Update,
  /**
   * The write moves only uid counters (and `changed`): it returns just the updated attributes, and a
   * session cached for token checks stays valid (it changes no field they read; store/record-cache.ts).
   */
  countersOnly = false,
): Promise<Item> {
  const out = await ctx.db.send<UpdateCommandOutput>(
    'UpdateItem',
    new UpdateCommand({
      TableName: ctx.db.tableName,
      Key: { [PK]: pk },
      ReturnValues: countersOnly ? 'UPDATED_NEW' : 'ALL_NEW',
      ...u.build(),
    }),
    { checkedFieldsKept: countersOnly },
  );
  return out.Attributes ?? {};
}
