/**
 * Pilots: created in PENDING_LAUNCH under a pilot manager, changed only through guarded writes.
 */

import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { ComputePilotDescription } from '../core/descriptions.ts';
import { BadParameter, DoesNotExist } from '../core/errors.ts';
import type { PilotSize } from '../core/slots.ts';
import { isFinal, type PilotState, pilotModel, progress, progressOrStay } from '../core/states.ts';
import { batchGet, batchPut } from './batch.ts';
import type { StoreContext } from './context.ts';
import { ConditionFailed } from './db.ts';
import type { Update } from './expr.ts';
import { applyPatch, applyTransition, type PatchOutcome, type TransitionOutcome } from './guarded.ts';
import { changedKey, entityPk, feedOf, LIVE_PILOTS, PK } from './keys.ts';
import { getPilotManager, toUmgr } from './managers.ts';
import { notify } from './observer.ts';
import { type Page, type PageOptions, queryByParent, queryByPilot } from './query.ts';
import type {
  Item,
  PilotCommand,
  PilotRecord,
  ResourceDetail,
  TaskTokens,
  UnitManagerRecord,
} from './records.ts';
import { appendLog, HISTORY, historyStep, stripKeys } from './records.ts';
import { reserveIds } from './sessions.ts';

/** What a new pilot starts with besides its description. */
export interface NewPilot {
  description: ComputePilotDescription;
  /** SHA-256 of the pilot's agent secret. */
  secretHash?: string;
  sandbox?: string;
  /** See {@link PilotRecord.unitLimit}. */
  unitLimit?: PilotSize | 'none';
}

/** Fields a pilot write may set besides the state. Timestamps `started`/`finished` default to the write time. */
export interface PilotPatch {
  sandbox?: string;
  jobId?: string;
  resourceDetail?: ResourceDetail;
  started?: string;
  finished?: string;
  secretHash?: string;
  /** Set (string) or clear (null) task tokens. */
  taskTokens?: { [K in keyof TaskTokens]?: string | null };
  /** Lines appended to the pilot's log. */
  appendLog?: readonly string[];
  /** Commands queued for the agent. */
  appendCommands?: readonly PilotCommand[];
  /** Drop the queued commands (the agent took them). */
  clearCommands?: true;
  /** The agent's heartbeat and its own end (see PilotRecord). */
  lastHeartbeat?: string;
  agentEnd?: { state: string; reason: string };
  /** The pilot takes units from this backfilling unit manager's queue from now on (addPilots). */
  joinQueue?: string;
  /** The pilot takes no more units from this manager's queue (removePilots). */
  leaveQueue?: string;
  /** The pilot's end is fully processed (final state recorded, units swept): drop it from the live pilots. */
  retire?: true;
}

const toRecord = (item: Item): PilotRecord => {
  const { backfill, ...rest } = stripKeys<PilotRecord & { backfill?: unknown }>(item);
  // A string set on the table (ADD/DELETE without a read); an empty set is not stored.
  return backfill instanceof Set && backfill.size
    ? { ...rest, backfill: [...(backfill as Set<string>)].sort() }
    : rest;
};

/**
 * Create pilots under `pmgrId`, in PENDING_LAUNCH (RP: the insert already uses this state).
 * @throws DoesNotExist (no such manager), IncorrectState (session closed), DatabaseError
 */
export async function createPilots(
  ctx: StoreContext,
  sessionId: string,
  pmgrId: string,
  pilots: readonly NewPilot[],
): Promise<PilotRecord[]> {
  await getPilotManager(ctx, sessionId, pmgrId);
  const uids = await reserveIds(ctx, sessionId, 'pilot', pilots.length);
  const now = ctx.now();
  const items = pilots.map((p, i) => {
    const uid = uids[i] as string;
    const record: PilotRecord = {
      sessionId,
      uid,
      pmgr: pmgrId,
      state: 'PendingLaunch',
      stateHistory: [{ state: 'PendingLaunch', time: now }],
      description: p.description,
      resource: p.description.resource,
      ...(p.sandbox === undefined ? {} : { sandbox: p.sandbox }),
      ...(p.secretHash === undefined ? {} : { secretHash: p.secretHash }),
      ...(p.unitLimit === undefined ? {} : { unitLimit: p.unitLimit }),
      log: [],
      submitted: now,
      taskTokens: {},
      commands: [],
      changed: changedKey(now, uid),
    };
    const { stateHistory: _, ...rest } = record;
    const keys = {
      [PK]: entityPk(sessionId, uid),
      kind: 'pilot',
      parent: feedOf(sessionId, pmgrId),
      // Live until retired (see LIVE_PILOTS): the reconciler finds pilots whose execution died here.
      pilotKey: LIVE_PILOTS,
    };
    return { record, item: { ...rest, [HISTORY]: [historyStep(['PendingLaunch'], now)], ...keys } };
  });
  await batchPut(
    ctx.db,
    items.map((x) => x.item),
  );
  const o = ctx.observer;
  if (o)
    notify(() =>
      o.created?.(
        'pilot',
        items.map((x) => x.record.state),
      ),
    );
  if (o && items.length)
    notify(() =>
      o.wrote?.(
        feedOf(sessionId, pmgrId),
        items.some((x) => isFinal(pilotModel, x.record.state)),
      ),
    );
  return items.map((x) => x.record);
}

/** @throws DoesNotExist, DatabaseError */
export async function getPilot(ctx: StoreContext, sessionId: string, pilotId: string): Promise<PilotRecord> {
  const [pilot] = await getPilots(ctx, sessionId, [pilotId]);
  return pilot as PilotRecord;
}

/**
 * Pilots by uid, in the order asked.
 * @throws DoesNotExist naming the first missing uid, DatabaseError
 */
export async function getPilots(
  ctx: StoreContext,
  sessionId: string,
  pilotIds: readonly string[],
): Promise<PilotRecord[]> {
  const found = await batchGet(
    ctx.db,
    pilotIds.map((p) => entityPk(sessionId, p)),
  );
  return pilotIds.map((p) => {
    const item = found.get(entityPk(sessionId, p));
    if (item?.kind !== 'pilot') throw new DoesNotExist(`pilot ${p} does not exist`, { obj: p });
    return toRecord(item);
  });
}

/**
 * A unit manager and the pilots it is believed to have, in one strongly consistent BatchGetItem (a
 * submission reads both before its first write). `pilots` is undefined when one of them does not exist.
 * @throws DoesNotExist (no such unit manager), DatabaseError
 */
export async function getUnitManagerWithPilots(
  ctx: StoreContext,
  sessionId: string,
  umgrId: string,
  pilotIds: readonly string[],
): Promise<{ umgr: UnitManagerRecord; pilots: PilotRecord[] | undefined }> {
  const mk = entityPk(sessionId, umgrId);
  const found = await batchGet(ctx.db, [mk, ...pilotIds.map((p) => entityPk(sessionId, p))]);
  const m = found.get(mk);
  if (m?.kind !== 'umgr') throw new DoesNotExist(`unit manager ${umgrId} does not exist`, { obj: umgrId });
  const items = pilotIds.map((p) => found.get(entityPk(sessionId, p)));
  return {
    umgr: toUmgr(m),
    pilots: items.every((i) => i?.kind === 'pilot') ? items.map((i) => toRecord(i as Item)) : undefined,
  };
}

/** Pilots of a manager, oldest change first; with `since`, only those changed after that cursor. */
export function listPilots(
  ctx: StoreContext,
  sessionId: string,
  pmgrId: string,
  options: PageOptions = {},
): Promise<Page<PilotRecord>> {
  return queryByParent(ctx, feedOf(sessionId, pmgrId), options, toRecord);
}

/**
 * Pilots whose end has not been fully processed yet (every session), for the reconciler. The index
 * holds keys only; the items are read after the query, so a page may hold fewer than `limit`.
 */
export function listLivePilots(
  ctx: StoreContext,
  options: Omit<PageOptions, 'since'> = {},
): Promise<Page<PilotRecord>> {
  return queryByPilot(ctx, LIVE_PILOTS, options, toRecord);
}

/**
 * Move a pilot to `target` (and every state between, see core/states.ts) and apply `patch`, in one
 * conditional write. Refusals (not a progress, lost race to a final state, missing) are returned.
 * With `retry`, a pilot already in `target` (a retried step) gets the patch and no new history step.
 */
export async function transitionPilot(
  ctx: StoreContext,
  sessionId: string,
  pilotId: string,
  target: PilotState,
  patch: PilotPatch = {},
  options: { retry?: boolean } = {},
): Promise<TransitionOutcome<PilotRecord, PilotState>> {
  const pk = entityPk(sessionId, pilotId);
  const current = (await batchGet(ctx.db, [pk])).get(pk);
  return applyTransition(
    ctx,
    {
      what: 'pilot',
      pk,
      uid: pilotId,
      target,
      decide: (s) => (options.retry ? progressOrStay : progress)(pilotModel, s, target),
      patch: (u, entered, now) => {
        applyPilotPatch(u, patch, now);
        if (entered.includes('Active') && patch.started === undefined) u.setIfAbsent('started', now);
        if (entered.some((s) => isFinal(pilotModel, s)) && patch.finished === undefined)
          u.setIfAbsent('finished', now);
      },
      toRecord,
    },
    current?.kind === 'pilot' ? current : undefined,
  );
}

/** Guards of {@link patchPilot}. */
export interface PilotGuard {
  /** Write only while the pilot is in one of these states (e.g. store a task token only while Launching). */
  states?: readonly PilotState[];
}

/** Update a pilot's fields without a state change, guarded by its state. */
export function patchPilot(
  ctx: StoreContext,
  sessionId: string,
  pilotId: string,
  patch: PilotPatch,
  guard: PilotGuard = {},
): Promise<PatchOutcome<PilotRecord>> {
  return applyPatch(ctx, {
    what: 'pilot',
    pk: entityPk(sessionId, pilotId),
    uid: pilotId,
    ...(guard.states ? { states: guard.states } : {}),
    // kind guard: a unit's uid cannot be patched as a pilot.
    expect: { kind: 'pilot' },
    patch: (u, now) => applyPilotPatch(u, patch, now),
    toRecord,
  });
}

function applyPilotPatch(u: Update, patch: PilotPatch, now: string): void {
  for (const key of [
    'sandbox',
    'jobId',
    'resourceDetail',
    'started',
    'finished',
    'secretHash',
    'lastHeartbeat',
    'agentEnd',
  ] as const) {
    if (patch[key] !== undefined) u.set(key, patch[key]);
  }
  for (const [name, token] of Object.entries(patch.taskTokens ?? {})) {
    if (token === null) u.remove(`taskTokens.${name}`);
    else if (token !== undefined) u.set(`taskTokens.${name}`, token);
  }
  if (patch.appendLog?.length) appendLog(u, patch.appendLog, now);
  if (patch.clearCommands && patch.appendCommands?.length) {
    throw new BadParameter('a pilot patch cannot both clear and append commands');
  }
  if (patch.clearCommands) u.set('commands', []);
  if (patch.appendCommands?.length) u.append('commands', patch.appendCommands);
  if (patch.retire) u.remove('pilotKey');
  if (patch.joinQueue !== undefined && patch.leaveQueue !== undefined)
    throw new BadParameter('a pilot patch cannot both join and leave a queue');
  if (patch.joinQueue !== undefined) u.add('backfill', new Set([patch.joinQueue]));
  if (patch.leaveQueue !== undefined) u.delete('backfill', new Set([patch.leaveQueue]));
}

/**
 * Drops the first `count` commands, which the agent has taken, so the pilot item (rewritten whole by every
 * pilot write, and copied into its byParent entry) does not grow with every cancel of a long-lived pilot.
 * Guarded by what the caller read: the same base and list length, so a command appended meanwhile (or a
 * trim by a repeated request) makes it a no-op; the next heartbeat tries again. False when it did nothing.
 * @throws DatabaseError
 */
export async function trimCommands(
  ctx: StoreContext,
  sessionId: string,
  pilot: Pick<PilotRecord, 'uid' | 'commands' | 'commandsBase'>,
  count: number,
): Promise<boolean> {
  const base = pilot.commandsBase ?? 0;
  if (count <= 0 || count > pilot.commands.length) return false;
  try {
    await ctx.db.send(
      'UpdateItem',
      new UpdateCommand({
        TableName: ctx.db.tableName,
        Key: { [PK]: entityPk(sessionId, pilot.uid) },
        UpdateExpression: 'SET #c = :rest, #b = :newBase',
        ConditionExpression:
          base === 0 ? 'attribute_not_exists(#b) AND size(#c) = :len' : '#b = :base AND size(#c) = :len',
        ExpressionAttributeNames: { '#c': 'commands', '#b': 'commandsBase' },
        ExpressionAttributeValues: {
          ':rest': pilot.commands.slice(count),
          ':newBase': base + count,
          ':len': pilot.commands.length,
          ...(base === 0 ? {} : { ':base': base }),
        },
      }),
    );
    return true;
  } catch (e) {
    if (e instanceof ConditionFailed) return false;
    throw e;
  }
}
