/**
 * Pilot and unit managers. Their byParent partition is a per-session synthetic parent
 * (`<sid>#pmgrs`, `<sid>#umgrs`), so a session's managers of one kind list with one Query.
 */
import { PutCommand, UpdateCommand, type UpdateCommandOutput } from '@aws-sdk/lib-dynamodb';
import { DoesNotExist } from '../core/errors.ts';
import { getItem, type StoreContext } from './context.ts';
import { ConditionFailed } from './db.ts';
import { Update } from './expr.ts';
import { changedKey, entityPk, managersParent, PK } from './keys.ts';
import { type Page, type PageOptions, queryByParent } from './query.ts';
import { type Item, type PilotManagerRecord, stripKeys, type UnitManagerRecord } from './records.ts';
import { reserveIds } from './sessions.ts';

const toPmgr = (item: Item): PilotManagerRecord => stripKeys<PilotManagerRecord>(item);
/** A unit manager's record from its item. */
export const toUmgr = (item: Item): UnitManagerRecord => {
  const { rrNext: _rr, ...rest } = stripKeys<UnitManagerRecord & { rrNext?: number }>(item);
  return { ...rest, pilots: pilotsOf(item) };
};

/**
 * Create a pilot manager.
 * @throws DoesNotExist, IncorrectState (session closed), DatabaseError
 */
export async function createPilotManager(ctx: StoreContext, sessionId: string): Promise<PilotManagerRecord> {
  const [uid] = (await reserveIds(ctx, sessionId, 'pmgr', 1)) as [string];
  const now = ctx.now();
  const record: PilotManagerRecord = { sessionId, uid, created: now, changed: changedKey(now, uid) };
  await put(ctx, {
    ...record,
    [PK]: entityPk(sessionId, uid),
    kind: 'pmgr',
    parent: managersParent(sessionId, 'pmgr'),
  });
  return record;
}

/**
 * Create a unit manager with its scheduler name (`round_robin`, `direct_submission`, `backfilling`).
 * @throws DoesNotExist, IncorrectState (session closed), DatabaseError
 */
export async function createUnitManager(
  ctx: StoreContext,
  sessionId: string,
  scheduler: string,
): Promise<UnitManagerRecord> {
  const [uid] = (await reserveIds(ctx, sessionId, 'umgr', 1)) as [string];
  const now = ctx.now();
  const record: UnitManagerRecord = {
    sessionId,
    uid,
    scheduler,
    pilots: [],
    created: now,
    changed: changedKey(now, uid),
  };
  // `pilots` is a string set on the table (ADD/DELETE without a read); an empty set cannot be stored.
  const { pilots: _, ...stored } = record;
  await put(ctx, {
    ...stored,
    [PK]: entityPk(sessionId, uid),
    kind: 'umgr',
    parent: managersParent(sessionId, 'umgr'),
  });
  return record;
}

/** @throws DoesNotExist, DatabaseError */
export async function getPilotManager(
  ctx: StoreContext,
  sessionId: string,
  uid: string,
): Promise<PilotManagerRecord> {
  return toPmgr(await getKind(ctx, sessionId, uid, 'pmgr'));
}

/** @throws DoesNotExist, DatabaseError */
export async function getUnitManager(
  ctx: StoreContext,
  sessionId: string,
  uid: string,
): Promise<UnitManagerRecord> {
  return toUmgr(await getKind(ctx, sessionId, uid, 'umgr'));
}

/** A session's pilot managers. */
export function listPilotManagers(
  ctx: StoreContext,
  sessionId: string,
  options: PageOptions = {},
): Promise<Page<PilotManagerRecord>> {
  return queryByParent(ctx, managersParent(sessionId, 'pmgr'), options, toPmgr);
}

/** A session's unit managers. */
export function listUnitManagers(
  ctx: StoreContext,
  sessionId: string,
  options: PageOptions = {},
): Promise<Page<UnitManagerRecord>> {
  return queryByParent(ctx, managersParent(sessionId, 'umgr'), options, toUmgr);
}

/**
 * Add and/or take away pilots of a unit manager, with set semantics (no read needed). DynamoDB refuses
 * ADD and DELETE on one attribute in one write, so a change with both costs two UpdateItems.
 * @throws DoesNotExist, DatabaseError
 */
export async function updateUnitManagerPilots(
  ctx: StoreContext,
  sessionId: string,
  uid: string,
  change: { add?: readonly string[]; remove?: readonly string[] },
): Promise<UnitManagerRecord> {
  let record: UnitManagerRecord | undefined;
  if (change.add?.length)
    record = await changePilots(ctx, sessionId, uid, (u) => u.add('pilots', new Set(change.add)));
  if (change.remove?.length) {
    record = await changePilots(ctx, sessionId, uid, (u) => u.delete('pilots', new Set(change.remove)));
  }
  return record ?? getUnitManager(ctx, sessionId, uid);
}

/**
 * Moves a unit manager's round-robin cursor on by `count` in one write and returns where it stood: the
 * slot of the first of `count` units being bound. RP's round-robin scheduler keeps this index across
 * `submit_units` calls; without it every call would start over at the first pilot.
 * @throws DoesNotExist, DatabaseError
 */
export async function advanceRoundRobin(
  ctx: StoreContext,
  sessionId: string,
  uid: string,
  count: number,
): Promise<number> {
  try {
    const out = await ctx.db.send<UpdateCommandOutput>(
      'UpdateItem',
      new UpdateCommand({
        TableName: ctx.db.tableName,
        Key: { [PK]: entityPk(sessionId, uid) },
        UpdateExpression: 'ADD #rr :n',
        ConditionExpression: '#kind = :umgr',
        ExpressionAttributeNames: { '#rr': 'rrNext', '#kind': 'kind' },
        ExpressionAttributeValues: { ':n': count, ':umgr': 'umgr' },
        ReturnValues: 'UPDATED_OLD',
      }),
    );
    return Number(out.Attributes?.rrNext ?? 0);
  } catch (e) {
    if (e instanceof ConditionFailed)
      throw new DoesNotExist(`unit manager ${uid} does not exist`, { obj: uid });
    throw e;
  }
}

async function changePilots(
  ctx: StoreContext,
  sessionId: string,
  uid: string,
  change: (u: Update) => void,
): Promise<UnitManagerRecord> {
  const u = new Update()
    .set('changed', changedKey(ctx.now(), uid))
    .when((c) => `${c.path('kind')} = ${c.value('umgr')}`);
  change(u);
  try {
    const out = await ctx.db.send<UpdateCommandOutput>(
      'UpdateItem',
      new UpdateCommand({
        TableName: ctx.db.tableName,
        Key: { [PK]: entityPk(sessionId, uid) },
        ReturnValues: 'ALL_NEW',
        ...u.build(),
      }),
    );
    return toUmgr(out.Attributes ?? {});
  } catch (e) {
    if (e instanceof ConditionFailed)
      throw new DoesNotExist(`unit manager ${uid} does not exist`, { obj: uid });
    throw e;
  }
}

async function getKind(
  ctx: StoreContext,
  sessionId: string,
  uid: string,
  kind: 'pmgr' | 'umgr',
): Promise<Item> {
  const item = await getItem(ctx, entityPk(sessionId, uid));
  if (!item || item.kind !== kind) {
    throw new DoesNotExist(`${kind === 'pmgr' ? 'pilot' : 'unit'} manager ${uid} does not exist`, {
      obj: uid,
    });
  }
  return item;
}

async function put(ctx: StoreContext, item: Item): Promise<void> {
  await ctx.db.send(
    'PutItem',
    new PutCommand({
      TableName: ctx.db.tableName,
      Item: item,
      // uids come from the session counter, so this only guards against a counter reset.
      ConditionExpression: 'attribute_not_exists(#pk)',
      ExpressionAttributeNames: { '#pk': PK },
    }),
  );
}

function pilotsOf(item: Item): string[] {
  const p = item.pilots;
  return p instanceof Set ? [...(p as Set<string>)].sort() : [];
}
