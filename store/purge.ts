/**
 * The purge of a session closed with cleanup (the rule is core/purge.ts): finding the marked sessions,
 * reading what decides whether one is due, and deleting its records group by group in the order of
 * {@link purgePlan}, through the indexes (never a scan) and in BatchWriteItem pages, within a budget.
 */
import { DeleteCommand } from '@aws-sdk/lib-dynamodb';
import { ENDPOINT_OPS } from '../core/endpoints.ts';
import { allItems } from '../core/pages.ts';
import { nextPageSize, type PurgeBudget, type PurgePilotView, type PurgeStep } from '../core/purge.ts';
import { isFinal, type PilotState, pilotModel } from '../core/states.ts';
import { batchDelete } from './batch.ts';
import type { StoreContext } from './context.ts';
import { contextsParent } from './credentials.ts';
import { ConditionFailed } from './db.ts';
import { endpointsParent, requestPk } from './endpoints.ts';
import { entityPk, LIVE_PILOTS, managersParent, PK, PURGE_SESSIONS } from './keys.ts';
import { pullPk } from './pulls.ts';
import { type Page, type PageOptions, queryByParentAttrs, queryByPilot } from './query.ts';
import type { SessionRecord } from './records.ts';
import { resourcesParent } from './resources.ts';
import { sessionOf } from './sessions.ts';

/** Keys one query page returns for deletion: four BatchWriteItem requests' worth. */
const PAGE = 100;

/** The session's managers and pilots, as the purge decision and plan need them. */
export interface PurgeSubjects {
  umgrs: string[];
  pmgrs: string[];
  pilots: PurgePilotView[];
}

/** What one purge pass over a session did. */
export interface PurgeProgress {
  /** Delete requests sent (a key that was gone already counts too: BatchWriteItem does not say). */
  deleted: number;
  /** Every record is gone, the session item too. False: the budget ran out; the next run resumes. */
  done: boolean;
}

/** The sessions closed with cleanup whose records are not purged yet, a page at a time. */
export async function listSessionsToPurge(
  ctx: StoreContext,
  options: Omit<PageOptions, 'since'> = {},
): Promise<Page<SessionRecord>> {
  return queryByPilot(ctx, PURGE_SESSIONS, options, sessionOf);
}

/** The uid part of `<sessionId>#<uid>`. */
const uidOf = (sessionId: string, pk: unknown) => String(pk).slice(sessionId.length + 1);

/** Every item of a byParent partition, with only the attributes named. */
function partition(ctx: StoreContext, parent: string, attrs: readonly string[]) {
  return allItems((next) => queryByParentAttrs(ctx, parent, attrs, next ? { next } : {}));
}

/**
 * The session's unit and pilot managers and its pilots (state and whether still live), read through the
 * managers' partitions with a projection: a few small reads however many units the session has.
 */
export async function purgeSubjects(ctx: StoreContext, sessionId: string): Promise<PurgeSubjects> {
  const ids = async (kind: 'pmgr' | 'umgr') =>
    (await partition(ctx, managersParent(sessionId, kind), [PK])).map((i) => uidOf(sessionId, i[PK]));
  const [umgrs, pmgrs] = await Promise.all([ids('umgr'), ids('pmgr')]);
  const pilots: PurgePilotView[] = [];
  for (const pmgr of pmgrs) {
    for (const item of await partition(ctx, entityPk(sessionId, pmgr), [PK, 'state', 'pilotKey']))
      pilots.push({
        uid: uidOf(sessionId, item[PK]),
        final: isFinal(pilotModel, item.state as PilotState),
        live: item.pilotKey === LIVE_PILOTS,
      });
  }
  return { umgrs, pmgrs, pilots };
}

/** Where the records of a step are: a byParent partition to walk, or keys known without a read. */
function locate(sessionId: string, step: PurgeStep): { parent: string } | { pks: string[] } {
  switch (step.what) {
    case 'units':
      return { parent: entityPk(sessionId, step.umgr) };
    case 'pilots':
      return { parent: entityPk(sessionId, step.pmgr) };
    case 'pilotSideItems':
      return {
        pks: [
          ...ENDPOINT_OPS.map((op) => requestPk(sessionId, step.pilot, op)),
          pullPk(sessionId, step.pilot),
        ],
      };
    case 'endpoints':
      return { parent: endpointsParent(sessionId) };
    case 'contexts':
      return { parent: contextsParent(sessionId) };
    case 'resources':
      return { parent: resourcesParent(sessionId) };
    case 'managers':
      return { parent: managersParent(sessionId, step.kind) };
    case 'session':
      return { pks: [sessionId] };
  }
}

/**
 * Deletes the session's records in the order of `steps` (core/purge.ts purgePlan), spending at most what
 * `budget` has left after `spent`. A partition is walked page by page, each page's keys deleted before the
 * next page is read; a step whose keys are known is deleted whole or not at all. The session item goes
 * last and only if it is still marked (a conditional delete), which ends the purge. Stopped by the budget,
 * it returns `done: false`; a later call with the same plan starts over and finds only what is left.
 * @throws DatabaseError
 */
export async function purgeRecords(
  ctx: StoreContext,
  sessionId: string,
  steps: readonly PurgeStep[],
  budget: PurgeBudget,
  spent = 0,
): Promise<PurgeProgress> {
  let deleted = 0;
  const room = () => nextPageSize(budget, spent + deleted, Date.parse(ctx.now()), PAGE);
  for (const step of steps) {
    const where = locate(sessionId, step);
    if ('pks' in where) {
      if (room() < where.pks.length) return { deleted, done: false };
      if (step.what === 'session') await deleteMarkedSession(ctx, sessionId);
      else await batchDelete(ctx.db, where.pks);
      deleted += where.pks.length;
      continue;
    }
    let next: string | undefined;
    do {
      const limit = room();
      if (limit === 0) return { deleted, done: false };
      const page = await queryByParentAttrs(ctx, where.parent, [PK], { limit, next });
      await batchDelete(
        ctx.db,
        page.items.map((i) => String(i[PK])),
      );
      deleted += page.items.length;
      next = page.next;
    } while (next);
  }
  return { deleted, done: true };
}

/** Deletes the session item if it is still marked for the purge (else someone got there first: fine). */
async function deleteMarkedSession(ctx: StoreContext, sessionId: string): Promise<void> {
  try {
    await ctx.db.send(
      'DeleteItem',
      new DeleteCommand({
        TableName: ctx.db.tableName,
        Key: { [PK]: sessionId },
        ConditionExpression: '#kind = :session AND attribute_exists(#purgeAt)',
        ExpressionAttributeNames: { '#kind': 'kind', '#purgeAt': 'purgeAt' },
        ExpressionAttributeValues: { ':session': 'session' },
      }),
    );
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
  }
}
