/**
 * What launches need besides pilots: a session's sealed SSH contexts (one item per session and resource,
 * `*` for every resource) and the SSH host keys trusted on first use (one item per `host:port`, shared by
 * all sessions, first writer wins). Contexts arrive sealed (AES-GCM, functions/lib/secrets.ts): the
 * store never sees a key or password in plaintext.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { allItems } from '../core/pages.ts';
import { getItem, type StoreContext } from './context.ts';
import { ConditionFailed } from './db.ts';
import { entityPk, PK } from './keys.ts';
import { queryByParent } from './query.ts';

const contextPk = (sessionId: string, resource: string) => entityPk(sessionId, `context:${resource}`);
/**
 * The byParent partition of a session's contexts: they are listed, and purged with the session, without a
 * scan. Every context is in it, also one stored without `info` (a generated key's), which is not listed.
 */
export const contextsParent = (sessionId: string) => entityPk(sessionId, 'contexts');

/** What may be shown of a context (RP's `list_contexts()` after reconnect): never a key or password. */
export interface ContextInfo {
  type: 'ssh' | 'userpass';
  userId?: string;
  /** The resource key it is for, `*` for every resource. */
  resource: string;
  /** Which credential it holds: a private key, a password, a key Sortie generated, or none (userId only). */
  credential: 'key' | 'password' | 'generatedKey' | 'none';
}
const hostKeyPk = (hostPort: string) => `hostkey:${hostPort}`;

/**
 * Stores (or replaces) a session's sealed context for `resource` (`*`: any resource), with `info`, the
 * part that may be listed, beside it in the clear.
 */
export async function putContext(
  ctx: StoreContext,
  sessionId: string,
  resource: string,
  sealed: string,
  info?: Omit<ContextInfo, 'resource'>,
): Promise<void> {
  await ctx.db.send(
    'PutItem',
    new PutCommand({
      TableName: ctx.db.tableName,
      Item: {
        [PK]: contextPk(sessionId, resource),
        kind: 'context',
        sessionId,
        resource,
        sealed,
        ...(info ? { info } : {}),
        parent: contextsParent(sessionId),
        changed: ctx.now(),
      },
    }),
  );
}

/**
 * The session's contexts as they may be shown (one per resource key: the last one added there). Contexts
 * the user did not add (a generated key's, which has no `info`) are not shown.
 */
export async function listContexts(ctx: StoreContext, sessionId: string): Promise<ContextInfo[]> {
  const all = await allItems((next) =>
    queryByParent(ctx, contextsParent(sessionId), next ? { next } : {}, (item) =>
      item.info === undefined
        ? undefined
        : { ...(item.info as Omit<ContextInfo, 'resource'>), resource: String(item.resource) },
    ),
  );
  return all.filter((c): c is ContextInfo => c !== undefined);
}

/** The sealed context for `resource`, else the session's catch-all one, else undefined. */
export async function getContext(
  ctx: StoreContext,
  sessionId: string,
  resource: string,
): Promise<string | undefined> {
  for (const key of [resource, '*']) {
    const item = await getItem(ctx, contextPk(sessionId, key));
    if (item?.kind === 'context' && typeof item.sealed === 'string') return item.sealed;
  }
  return undefined;
}

/** The host key line recorded for `host:port`, if any. */
export async function getHostKey(ctx: StoreContext, hostPort: string): Promise<string | undefined> {
  const item = await getItem(ctx, hostKeyPk(hostPort));
  return item?.kind === 'hostkey' && typeof item.keyLine === 'string' ? item.keyLine : undefined;
}

/** Records a host key unless one is recorded already (trust on first use: the first key seen wins). */
export async function putHostKeyIfAbsent(
  ctx: StoreContext,
  hostPort: string,
  keyLine: string,
): Promise<void> {
  try {
    await ctx.db.send(
      'PutItem',
      new PutCommand({
        TableName: ctx.db.tableName,
        Item: { [PK]: hostKeyPk(hostPort), kind: 'hostkey', keyLine, changed: ctx.now() },
        ConditionExpression: 'attribute_not_exists(#pk)',
        ExpressionAttributeNames: { '#pk': PK },
      }),
    );
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
  }
}

/** A key pair the backend generated for a user on a resource; the private half is sealed. */
export interface GeneratedKey {
  keyRef: string;
  resource: string;
  userId?: string;
  publicKey: string;
  sealedPrivateKey: string;
  /** SHA-256 of the key id's secret: whoever holds the key id may use the key, nobody else. */
  secretHash: string;
  created: string;
}

const keyPk = (keyRef: string) => `sshkey:${keyRef}`;

/** Stores a generated key pair (its id is fresh, so it never overwrites one). */
export async function putGeneratedKey(
  ctx: StoreContext,
  key: Omit<GeneratedKey, 'created'>,
): Promise<GeneratedKey> {
  const record: GeneratedKey = { ...key, created: ctx.now() };
  await ctx.db.send(
    'PutItem',
    new PutCommand({
      TableName: ctx.db.tableName,
      Item: { ...record, [PK]: keyPk(key.keyRef), kind: 'sshkey' },
      ConditionExpression: 'attribute_not_exists(#pk)',
      ExpressionAttributeNames: { '#pk': PK },
    }),
  );
  return record;
}

/** A generated key pair by its reference, if it exists. */
export async function getGeneratedKey(ctx: StoreContext, keyRef: string): Promise<GeneratedKey | undefined> {
  const item = await getItem(ctx, keyPk(keyRef));
  if (item?.kind !== 'sshkey') return undefined;
  const { [PK]: _pk, kind: _kind, ...rest } = item;
  return rest as unknown as GeneratedKey;
}
