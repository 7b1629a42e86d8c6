/**
 * Endpoints and the requests the pilot machine leaves for them. An endpoint (one item per session and
 * endpoint id) is a user-run process on a site's login node; only its token's hash is stored. A request is
 * one item per pilot and kind (`launch`, `check`, `cancel`, `tail`), so a step that runs again finds the
 * request it made instead of making a second one (a re-sent launch never submits twice). While pending, a
 * request sits in the byParent partition of its session and resource, which the endpoint's long poll
 * reads; an answer or a withdrawal takes it out.
 */
import { PutCommand, UpdateCommand, type UpdateCommandOutput } from '@aws-sdk/lib-dynamodb';
import type { EndpointJob, EndpointJobState, EndpointOp } from '../core/endpoints.ts';
import { DoesNotExist } from '../core/errors.ts';
import { allItems } from '../core/pages.ts';
import { getItem, type StoreContext } from './context.ts';
import { ConditionFailed } from './db.ts';
import { changedKey, entityPk, PK } from './keys.ts';
import { queryByParent } from './query.ts';
import type { Item } from './records.ts';

/** A registered endpoint. */
export interface EndpointRecord {
  sessionId: string;
  uid: string;
  /** The resource whose pilots it launches. */
  resource: string;
  secretHash: string;
  created: string;
  state: 'open' | 'closed';
  /** Its last poll. */
  lastSeen?: string;
  /** The process that polls for it now (a new `endpoint start` takes over from the last one). */
  instance?: string;
  /** Where it runs, as it says (user@host), for `sortie endpoint status` and the pilot log. */
  host?: string;
}

/** A request for an endpoint. */
export interface EndpointRequestRecord {
  sessionId: string;
  pilotId: string;
  op: EndpointOp;
  resource: string;
  /** Bumped each time a check or tail is asked again: an answer names the seq it answers. */
  seq: number;
  status: 'pending' | 'answered' | 'withdrawn';
  /** The job it is about (check, cancel, tail). */
  job?: EndpointJob;
  created: string;
  asked: string;
  answered?: string;
  /** The answer: a job (launch), a status (check), a text (tail), or an error. */
  answer?: { ok: boolean; error?: string; job?: EndpointJob; status?: EndpointJobState; text?: string };
  /** Check only: the last status any answer gave (kept when the check is asked again). */
  lastStatus?: EndpointJobState;
}

/** byParent partition of a session's endpoints (listed, and purged with the session). */
export const endpointsParent = (sessionId: string) => entityPk(sessionId, 'endpoints');
/**
 * pk of a pilot's request of one kind. Requests leave their byParent partition once answered, so the
 * purge deletes them by these known keys.
 */
export const requestPk = (sessionId: string, pilotId: string, op: EndpointOp) =>
  entityPk(sessionId, `ereq:${pilotId}:${op}`);
/** The byParent partition of a resource's pending requests in a session (the endpoint's inbox). */
const pendingParent = (sessionId: string, resource: string) => entityPk(sessionId, `ereqs:${resource}`);

function endpointOf(item: Item): EndpointRecord {
  const { [PK]: _pk, kind: _k, parent: _p, changed: _c, ...rest } = item;
  return rest as unknown as EndpointRecord;
}
function requestOf(item: Item): EndpointRequestRecord {
  const { [PK]: _pk, kind: _k, parent: _p, changed: _c, ...rest } = item;
  return rest as unknown as EndpointRequestRecord;
}

/** Stores a new endpoint (its id is fresh, so it never overwrites one). */
export async function putEndpoint(
  ctx: StoreContext,
  e: Pick<EndpointRecord, 'sessionId' | 'uid' | 'resource' | 'secretHash'>,
): Promise<EndpointRecord> {
  const now = ctx.now();
  const record: EndpointRecord = { ...e, created: now, state: 'open' };
  await ctx.db.send(
    'PutItem',
    new PutCommand({
      TableName: ctx.db.tableName,
      Item: {
        ...record,
        [PK]: entityPk(e.sessionId, e.uid),
        kind: 'endpoint',
        parent: endpointsParent(e.sessionId),
        changed: changedKey(now, e.uid),
      },
      ConditionExpression: 'attribute_not_exists(#pk)',
      ExpressionAttributeNames: { '#pk': PK },
    }),
  );
  return record;
}

/**
 * An endpoint of a session.
 * @throws DoesNotExist
 */
export async function getEndpoint(
  ctx: StoreContext,
  sessionId: string,
  uid: string,
): Promise<EndpointRecord> {
  const item = await getItem(ctx, entityPk(sessionId, uid));
  if (item?.kind !== 'endpoint')
    throw new DoesNotExist(`no endpoint ${uid} in session ${sessionId}`, { obj: uid });
  return endpointOf(item);
}

/** A session's endpoints, oldest change first. */
export async function listEndpoints(ctx: StoreContext, sessionId: string): Promise<EndpointRecord[]> {
  return allItems((next) => queryByParent(ctx, endpointsParent(sessionId), next ? { next } : {}, endpointOf));
}

/** Records an endpoint's poll (when, which process, where) or its closing. */
export async function patchEndpoint(
  ctx: StoreContext,
  sessionId: string,
  uid: string,
  patch: { lastSeen?: string; instance?: string; host?: string; state?: 'closed' },
): Promise<EndpointRecord> {
  const sets: string[] = [];
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    names[`#${k}`] = k;
    values[`:${k}`] = v;
    sets.push(`#${k} = :${k}`);
  }
  try {
    const out = await ctx.db.send<UpdateCommandOutput>(
      'UpdateItem',
      new UpdateCommand({
        TableName: ctx.db.tableName,
        Key: { [PK]: entityPk(sessionId, uid) },
        UpdateExpression: `SET ${sets.join(', ')}`,
        // Only an endpoint item: a pilot's uid in the endpoint's place must not be patched.
        ConditionExpression: '#kind = :endpointKind',
        ExpressionAttributeNames: { ...names, '#kind': 'kind' },
        ExpressionAttributeValues: { ...values, ':endpointKind': 'endpoint' },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return endpointOf(out.Attributes ?? {});
  } catch (e) {
    if (e instanceof ConditionFailed) throw new DoesNotExist(`no endpoint ${uid} in session ${sessionId}`);
    throw e;
  }
}

/** The request of one kind for a pilot, if any. */
export async function getEndpointRequest(
  ctx: StoreContext,
  sessionId: string,
  pilotId: string,
  op: EndpointOp,
): Promise<EndpointRequestRecord | undefined> {
  const item = await getItem(ctx, requestPk(sessionId, pilotId, op));
  return item?.kind === 'ereq' ? requestOf(item) : undefined;
}

/**
 * Leaves a request for the endpoint of `resource`, or finds the one already there. A launch or a cancel is
 * made once per pilot (asking again returns the first, answered or not); a check or a tail that was
 * answered is asked again (seq + 1, the last status kept), one still pending is left as it is.
 */
export async function askEndpoint(
  ctx: StoreContext,
  r: { sessionId: string; pilotId: string; op: EndpointOp; resource: string; job?: EndpointJob },
): Promise<EndpointRequestRecord> {
  const now = ctx.now();
  const once = r.op === 'launch' || r.op === 'cancel';
  const names: Record<string, string> = {
    '#pk': PK,
    '#status': 'status',
    '#parent': 'parent',
    '#seq': 'seq',
  };
  const values: Record<string, unknown> = {
    ':kind': 'ereq',
    ':sid': r.sessionId,
    ':pid': r.pilotId,
    ':op': r.op,
    ':res': r.resource,
    ':pending': 'pending',
    ':parent': pendingParent(r.sessionId, r.resource),
    ':now': now,
    ':changed': changedKey(now, `${r.pilotId}:${r.op}`),
    ':minus1': -1,
    ':one': 1,
  };
  const sets = [
    '#kind = :kind',
    '#sid = :sid',
    '#pid = :pid',
    '#op = :op',
    '#resource = :res',
    '#status = :pending',
    '#parent = :parent',
    '#asked = :now',
    '#created = if_not_exists(#created, :now)',
    '#changed = :changed',
    '#seq = if_not_exists(#seq, :minus1) + :one',
  ];
  Object.assign(names, {
    '#op': 'op',
    '#resource': 'resource',
    '#kind': 'kind',
    '#sid': 'sessionId',
    '#pid': 'pilotId',
    '#asked': 'asked',
    '#created': 'created',
    '#changed': 'changed',
    '#answer': 'answer',
    '#answered': 'answered',
  });
  if (r.job) {
    names['#job'] = 'job';
    values[':job'] = r.job;
    sets.push('#job = :job');
  }
  try {
    const out = await ctx.db.send<UpdateCommandOutput>(
      'UpdateItem',
      new UpdateCommand({
        TableName: ctx.db.tableName,
        Key: { [PK]: requestPk(r.sessionId, r.pilotId, r.op) },
        UpdateExpression: `SET ${sets.join(', ')} REMOVE #answer, #answered`,
        // Once-only kinds: only if absent. Others: unless one is pending already.
        ConditionExpression: once
          ? 'attribute_not_exists(#pk)'
          : 'attribute_not_exists(#pk) OR #status <> :pending',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_NEW',
      }),
    );
    return requestOf(out.Attributes ?? {});
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
    const found = await getEndpointRequest(ctx, r.sessionId, r.pilotId, r.op);
    if (!found) throw e;
    return found;
  }
}

/** The pending requests for the endpoint of `resource` in a session (its long poll's answer). */
export async function pendingEndpointRequests(
  ctx: StoreContext,
  sessionId: string,
  resource: string,
): Promise<EndpointRequestRecord[]> {
  return allItems((next) =>
    queryByParent(ctx, pendingParent(sessionId, resource), next ? { next } : {}, requestOf),
  );
}

/**
 * Records an endpoint's answer to the pending request `seq`. Returns the request as it is after (an
 * answer to a request withdrawn or asked again since is not recorded: `recorded: false`).
 */
export async function answerEndpointRequest(
  ctx: StoreContext,
  sessionId: string,
  pilotId: string,
  op: EndpointOp,
  seq: number,
  answer: NonNullable<EndpointRequestRecord['answer']>,
): Promise<{ recorded: boolean; request?: EndpointRequestRecord }> {
  const now = ctx.now();
  const lastStatus = answer.ok && answer.status ? ', #lastStatus = :answerStatus' : '';
  try {
    const out = await ctx.db.send<UpdateCommandOutput>(
      'UpdateItem',
      new UpdateCommand({
        TableName: ctx.db.tableName,
        Key: { [PK]: requestPk(sessionId, pilotId, op) },
        UpdateExpression: `SET #status = :answered, #answer = :answer, #answered = :now, #changed = :changed${lastStatus} REMOVE #parent`,
        ConditionExpression: '#status = :pending AND #seq = :seq',
        ExpressionAttributeNames: {
          '#status': 'status',
          '#seq': 'seq',
          '#parent': 'parent',
          '#answer': 'answer',
          '#answered': 'answered',
          '#changed': 'changed',
          ...(lastStatus ? { '#lastStatus': 'lastStatus' } : {}),
        },
        ExpressionAttributeValues: {
          ':answered': 'answered',
          ':pending': 'pending',
          ':answer': answer,
          ':now': now,
          ':changed': changedKey(now, `${pilotId}:${op}`),
          ':seq': seq,
          ...(lastStatus ? { ':answerStatus': answer.status } : {}),
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return { recorded: true, request: requestOf(out.Attributes ?? {}) };
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
    const request = await getEndpointRequest(ctx, sessionId, pilotId, op);
    return { recorded: false, ...(request ? { request } : {}) };
  }
}

/** Takes a pending request back (a pilot that ended before its launch was taken). True if it was pending. */
export async function withdrawEndpointRequest(
  ctx: StoreContext,
  sessionId: string,
  pilotId: string,
  op: EndpointOp,
): Promise<boolean> {
  const now = ctx.now();
  try {
    await ctx.db.send(
      'UpdateItem',
      new UpdateCommand({
        TableName: ctx.db.tableName,
        Key: { [PK]: requestPk(sessionId, pilotId, op) },
        UpdateExpression: 'SET #status = :withdrawn, #changed = :changed REMOVE #parent',
        ConditionExpression: '#status = :pending',
        ExpressionAttributeNames: { '#status': 'status', '#parent': 'parent', '#changed': 'changed' },
        ExpressionAttributeValues: {
          ':withdrawn': 'withdrawn',
          ':pending': 'pending',
          ':changed': changedKey(now, `${pilotId}:${op}`),
        },
      }),
    );
    return true;
  } catch (e) {
    if (e instanceof ConditionFailed) return false;
    throw e;
  }
}
