/**
 * The client API (SDK and CLI): sessions, managers, pilots and units. Every route but session creation
 * needs the session's bearer token; a token of another session gets 403.
 */

import { randomUUID } from 'node:crypto';
// Default import: ssh2 is CommonJS, and Node's ESM loader sees only some of its named exports (not utils).
import ssh2 from 'ssh2';
import { parsePilotDescription } from '../../core/descriptions.ts';
import { BadParameter, DoesNotExist, PermissionDenied, PilotException } from '../../core/errors.ts';
import { allItems } from '../../core/pages.ts';
import { purgeAtFor } from '../../core/purge.ts';
import { checkQueueTimeout, checkSandbox, type ResourceConfig } from '../../core/resources.ts';
import { bindsLate, parseScheduler } from '../../core/schedulers.ts';
import { isFinal, type PilotState, pilotModel, type UnitState, unitModel } from '../../core/states.ts';
import { sessionPrefix } from '../../core/transfer.ts';
import {
  feedOf,
  type PageOptions,
  type PilotRecord,
  type SessionRecord,
  type UnitRecord,
} from '../../store/index.ts';
import { authSession } from '../lib/auth.ts';
import { cancelQueued, wakeQueue } from '../lib/backfill.ts';
import { type CancelOutcome, cancelUnitRecords } from '../lib/cancel.ts';
import { briefPage, heldPage, parseHold, parseKnown } from '../lib/changes.ts';
import { httpHandler, type Request, str, strList } from '../lib/http.ts';
import { asIs, once, type Replay } from '../lib/idempotency.ts';
import { logger } from '../lib/log.ts';
import { cancelPilot, pilotsPerMinute, startPilotExecution } from '../lib/pilots.ts';
import { cleanupRetentionSeconds } from '../lib/purge.ts';
import { createPilotQueue } from '../lib/queues.ts';
import { sessionResources } from '../lib/resources.ts';
import { hashSecret, newSecret, seal, secretMatches, unseal } from '../lib/secrets.ts';
import { store } from '../lib/store.ts';
import { sessionTransfer } from '../lib/transfer-routes.ts';
import { deletePrefix } from '../lib/transfers.ts';
import {
  MAX_UNITS_PER_REQUEST,
  parseSubmission,
  pilotsHint,
  requeueUnclaimed,
  submitParsed,
  submitReads,
  unitLimit,
} from '../lib/units.ts';
import { chargeTo, flushUsage } from '../lib/usage.ts';
import { dashboardResponse } from './dashboard.ts';
import { endpointRoutes } from './endpoints.ts';
import { resourceRoutes } from './resources.ts';

/** The records the SDK sees: the store's minus what only the backend may know. */
function pilotOut(
  p: PilotRecord,
): Omit<
  PilotRecord,
  | 'secretHash'
  | 'taskTokens'
  | 'commands'
  | 'commandsBase'
  | 'sessionId'
  | 'lastHeartbeat'
  | 'agentEnd'
  | 'backfill'
  | 'unitLimit'
> {
  const {
    secretHash: _s,
    taskTokens: _t,
    commands: _c,
    commandsBase: _cb,
    sessionId: _sid,
    lastHeartbeat: _h,
    agentEnd: _e,
    backfill: _b,
    unitLimit: _ul,
    ...rest
  } = p;
  return rest;
}
function unitOut(u: UnitRecord): Omit<UnitRecord, 'sessionId' | 'lease' | 'leaseUntil' | 'armed'> {
  // The lease and the arm mark are between the control plane and the agent that pulled the unit.
  const { sessionId: _sid, lease: _l, leaseUntil: _lu, armed: _a, ...rest } = u;
  return rest;
}

async function session(req: Request) {
  return authSession(req.headers, req.params.sid, req.event.routeKey);
}

/** The private half of a generated key, for the holder of its key id (`<keyRef>~<secret>`). */
async function generatedPrivateKey(keyId: string): Promise<string> {
  const [keyRef, secret, extra] = keyId.split('~');
  const key = keyRef && secret && extra === undefined ? await store().getGeneratedKey(keyRef) : undefined;
  // One answer for unknown and wrong: a key id must not be guessable by probing.
  if (!key || !secretMatches(secret as string, key.secretHash))
    throw new PermissionDenied('context.keyId: unknown or invalid key id');
  return unseal(key.sealedPrivateKey);
}

function sessionOut(s: SessionRecord) {
  return {
    uid: s.sessionId,
    created: s.created,
    ...(s.lastReconnect ? { lastReconnect: s.lastReconnect } : {}),
    ...(s.closed ? { closed: s.closed } : {}),
    ...(s.usage ? { usage: s.usage } : {}),
  };
}

/** Largest page a list route serves on request (DynamoDB also ends a page at 1 MB). */
const MAX_PAGE_SIZE = 1_000;

/** Paging of a list route: `since` (change feed), `next` (page token), `limit` (page size, 1–1000). */
function pageOpts(req: Request): PageOptions {
  const { since, next, limit } = req.query;
  let size: number | undefined;
  if (limit !== undefined) {
    size = /^[0-9]+$/.test(limit) ? Number(limit) : Number.NaN;
    if (!(size >= 1 && size <= MAX_PAGE_SIZE))
      throw new BadParameter(
        `limit: must be a whole number from 1 to ${MAX_PAGE_SIZE}, got ${JSON.stringify(limit)}`,
      );
  }
  return { ...(since ? { since } : {}), ...(next ? { next } : {}), ...(size ? { limit: size } : {}) };
}

/** Units of the session, refusing unknown uids (404 naming them) and other managers' units. */
async function unitsOf(sid: string, umgr: string | undefined, uids: string[]): Promise<UnitRecord[]> {
  const found = await store().findUnits(sid, uids);
  const missing = uids.filter((u) => !found.has(u) || (umgr !== undefined && found.get(u)?.umgr !== umgr));
  if (missing.length)
    throw new DoesNotExist(`unknown unit(s) ${missing.slice(0, 10).join(', ')}${umgr ? ` in ${umgr}` : ''}`);
  return uids.map((u) => found.get(u) as UnitRecord);
}

/** Makes a key pair for `resource`, keeps its private half sealed, and adds it to the session's contexts. */
async function generateKey(
  s: SessionRecord,
  resource: string,
  rc: ResourceConfig,
  userId: string | undefined,
) {
  const ssh = rc.schemas.ssh as NonNullable<ResourceConfig['schemas']['ssh']>;
  const keyRef = `key.${randomUUID()}`;
  const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: `sortie ${keyRef}` });
  const secret = newSecret();
  await store().putGeneratedKey({
    keyRef,
    resource,
    ...(userId ? { userId } : {}),
    publicKey: pair.public,
    sealedPrivateKey: seal(pair.private),
    secretHash: hashSecret(secret),
  });
  // This session can use it at once; later sessions name it by keyId in their Context.
  const login = userId ?? ssh.user;
  await store().putContext(
    s.sessionId,
    resource,
    seal(JSON.stringify({ userId: login, userKey: pair.private })),
  );
  const host = ssh.host;
  return {
    keyId: `${keyRef}~${secret}`,
    publicKey: pair.public,
    resource,
    instructions:
      `Install the public key on ${host} (once), e.g. log in as ${login ?? 'yourself'} and run:\n` +
      `  mkdir -p ~/.ssh && chmod 700 ~/.ssh && echo '${pair.public}' >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys\n` +
      `Keep keyId secret: a later session uses the key with Context('ssh', { userId, keyId }). The private key never leaves Sortie.`,
  };
}

export const handler = httpHandler({
  'GET /dashboard': async () => dashboardResponse(),

  ...resourceRoutes,
  ...endpointRoutes,

  'POST /sessions': async (req) => {
    const name = req.body.name;
    if (name !== undefined && (typeof name !== 'string' || name.length > 128)) {
      throw new BadParameter(
        `session.name: must be a string of at most 128 characters, got ${JSON.stringify(name)?.slice(0, 80)}`,
      );
    }
    // The answer holds the session token: a repeat gets it back from a sealed copy, never from plaintext.
    const replay: Replay<{ uid: string; token: string; created: string; name?: string }> = {
      save: (a) => ({ ...a, token: seal(a.token) }),
      load: (saved) => {
        const a = saved as { uid: string; token: string; created: string; name?: string };
        return { ...a, token: unseal(a.token) };
      },
    };
    return once(req, '-', replay, async () => {
      const secret = newSecret();
      const s = await store().createSession({ tokenHash: hashSecret(secret) });
      chargeTo(s.sessionId);
      return {
        uid: s.sessionId,
        token: `${s.sessionId}~${secret}`,
        created: s.created,
        ...(name ? { name } : {}),
      };
    });
  },

  // The session's counted usage as far as it is written: this container's counts are written first (in the
  // embedded backend that is all of them; in AWS other warm containers add theirs within a minute).
  'GET /sessions/{sid}': async (req) => {
    const s = await session(req);
    await flushUsage([s.sessionId]);
    return sessionOut(await store().getSession(s.sessionId));
  },

  'POST /sessions/{sid}/reconnect': async (req) => {
    const s = await session(req);
    return sessionOut(await store().markReconnect(s.sessionId));
  },

  'POST /sessions/{sid}/close': async (req) => {
    const s = await session(req);
    if (req.body.terminate !== false) {
      for (const pmgr of await allItems((next) => store().listPilotManagers(s.sessionId, { next }))) {
        for (const p of await allItems((next) => store().listPilots(s.sessionId, pmgr.uid, { next })))
          if (!isFinal(pilotModel, p.state)) await cancelPilot(s.sessionId, p.uid, 'session close');
      }
    }
    const cleanup = req.body.cleanup === true;
    // Cleanup marks the session for the reconciler's purge of its records (after the retention, so that
    // report and dashboard still read it): a 100k-unit session cannot be deleted within one request. A
    // repeated close keeps the first mark's time.
    const closed =
      s.state === 'closed' && (!cleanup || s.purgeAt !== undefined)
        ? s
        : await store().closeSession(
            s.sessionId,
            cleanup ? { purgeAt: purgeAtFor(Date.now(), cleanupRetentionSeconds()) } : {},
          );
    // Units still waiting in a backfilling manager's queue: no pilot will come for them now (RP's close
    // cancels what did not run). After the close, so that a pilot's end sweeping units back into a queue
    // meanwhile either sees the session closed or has its units cancelled here.
    for (const m of await allItems((next) => store().listUnitManagers(s.sessionId, { next })))
      if (bindsLate(m.scheduler)) await cancelQueued(s.sessionId, m.uid, 'cancelled: session closed');
    // RP's cleanup deletes the session's data: its TRANSFER files now (the bucket's lifecycle rule
    // expires whatever a session closed without cleanup leaves), its records at the purge. After the
    // pilots ended: no agent still uploads. Repeating a close repeats the deletion, which is harmless.
    const deletedObjects = cleanup ? await deletePrefix(sessionPrefix(s.sessionId)) : 0;
    await flushUsage([s.sessionId]);
    return { uid: closed.sessionId, closed: closed.closed, deletedObjects };
  },

  'POST /sessions/{sid}/contexts': async (req) => {
    const s = await session(req);
    const type = str(req.body, 'type', 'context');
    if (type !== 'ssh' && type !== 'userpass')
      throw new BadParameter(`context.type: must be ssh or userpass, got ${JSON.stringify(type)}`);
    for (const f of ['userId', 'userKey', 'userPass', 'keyId', 'resource']) {
      if (req.body[f] !== undefined && typeof req.body[f] !== 'string')
        throw new BadParameter(`context.${f}: must be a string`);
    }
    // 400 naming an unknown resource; an alias is stored under the key it stands for.
    const resource =
      typeof req.body.resource === 'string'
        ? (await sessionResources(s.sessionId)).resolve(req.body.resource)
        : '*';
    let userKey = req.body.userKey as string | undefined;
    if (typeof req.body.keyId === 'string') userKey = await generatedPrivateKey(req.body.keyId);
    // RP's examples add contexts with only a user id (the key comes from ~/.ssh there) or an empty userpass:
    // accepted here, and a launch that needs a key then fails the pilot saying what to add (pilot/request.ts).
    // Sealed before it touches the table; only the launch function opens it.
    const sealed = seal(JSON.stringify({ userId: req.body.userId, userKey, userPass: req.body.userPass }));
    // What a reconnected session may list of it: who and which kind of credential, never the credential.
    const info = {
      type: type as 'ssh' | 'userpass',
      ...(typeof req.body.userId === 'string' && req.body.userId ? { userId: req.body.userId } : {}),
      credential:
        typeof req.body.keyId === 'string'
          ? ('generatedKey' as const)
          : userKey
            ? ('key' as const)
            : req.body.userPass
              ? ('password' as const)
              : ('none' as const),
    };
    return once(req, s.sessionId, { ...asIs(), secretBody: true }, async () => {
      await store().putContext(s.sessionId, resource, sealed, info);
      return { ok: true, resource };
    });
  },

  'GET /sessions/{sid}/contexts': async (req) => {
    const s = await session(req);
    return { items: await store().listContexts(s.sessionId) };
  },

  'POST /sessions/{sid}/keys': async (req) => {
    const s = await session(req);
    const registry = await sessionResources(s.sessionId);
    const resource = registry.resolve(str(req.body, 'resource', 'generateKey'));
    const rc = registry.get(resource);
    if (!rc.schemas.ssh)
      throw new BadParameter(`generateKey.resource: '${resource}' is not reached over SSH`);
    const userId = req.body.userId;
    if (userId !== undefined && (typeof userId !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(userId))) {
      throw new BadParameter(`generateKey.userId: must be a login name, got ${JSON.stringify(userId)}`);
    }
    // The answer holds the key id (a secret): a repeat gets it back from a sealed copy.
    const replay: Replay<Record<string, unknown>> = {
      save: (a) => seal(JSON.stringify(a)),
      load: (saved) => JSON.parse(unseal(saved as string)) as Record<string, unknown>,
    };
    return once(req, s.sessionId, replay, () => generateKey(s, resource, rc, userId as string | undefined));
  },

  'POST /sessions/{sid}/pmgrs': async (req) => {
    const s = await session(req);
    return once(req, s.sessionId, asIs(), async () => {
      const m = await store().createPilotManager(s.sessionId);
      return { uid: m.uid, created: m.created };
    });
  },
  'GET /sessions/{sid}/pmgrs': async (req) => {
    const s = await session(req);
    const page = await store().listPilotManagers(s.sessionId, pageOpts(req));
    return {
      items: page.items.map((m) => ({ uid: m.uid, created: m.created })),
      cursor: page.cursor,
      ...(page.next ? { next: page.next } : {}),
    };
  },

  'POST /sessions/{sid}/pilots': async (req) => {
    const s = await session(req);
    const pmgr = str(req.body, 'pmgr', 'submitPilots');
    const raw = req.body.descriptions;
    if (!Array.isArray(raw) || raw.length === 0 || raw.length > 100) {
      throw new BadParameter(
        `submitPilots.descriptions: must be a list of 1-100 pilot descriptions, got ${Array.isArray(raw) ? raw.length : typeof raw}`,
      );
    }
    const registry = await sessionResources(s.sessionId);
    const descriptions = raw.map((d, i) => {
      try {
        const parsed = parsePilotDescription(d);
        // Stored under the key an alias stands for, so that every later lookup (launch, contexts) agrees.
        const pd = { ...parsed, resource: registry.resolve(parsed.resource) };
        const rc = registry.get(pd.resource);
        if (pd.sandbox !== undefined) checkSandbox(pd.resource, rc, pd.sandbox);
        checkQueueTimeout(pd.resource, rc, pd.queueTimeout);
        for (const arg of rc.mandatoryArgs ?? []) {
          if ((pd as Record<string, unknown>)[arg] === undefined) {
            throw new BadParameter(
              `pilot description.${arg}: required by resource '${pd.resource}', got undefined`,
            );
          }
        }
        return pd;
      } catch (err) {
        if (err instanceof BadParameter && raw.length > 1)
          throw new BadParameter(`[${i}] ${err.message}`, { cause: err });
        throw err;
      }
    });
    // A repeat re-reads the pilots (their state has moved on since): the claim holds only their uids.
    const replay: Replay<{ items: ReturnType<typeof pilotOut>[] }> = {
      save: (a) => a.items.map((p) => p.uid),
      load: async (uids) => ({
        items: (await store().getPilots(s.sessionId, uids as string[])).map(pilotOut),
      }),
    };
    return once(req, s.sessionId, replay, async () => {
      // Inside `once`: a repeat of an accepted request replays it and takes nothing.
      await store().takeQuota(s.sessionId, 'pilots', descriptions.length, pilotsPerMinute());
      const pilots = await store().createPilots(
        s.sessionId,
        pmgr,
        // The unit limit is fixed with the pilot: a submission checks units against it without the configs.
        descriptions.map((description) => ({ description, unitLimit: unitLimit(registry, description) })),
      );
      // Queue first: units may be submitted the moment this returns, before the agent exists.
      await Promise.all(pilots.map((p) => createPilotQueue(s.sessionId, p.uid)));
      await Promise.all(pilots.map((p) => startPilotExecution(p)));
      return { items: pilots.map(pilotOut) };
    });
  },

  'GET /sessions/{sid}/pilots': async (req) => {
    const s = await session(req);
    const pmgr = req.query.pmgr;
    if (!pmgr) throw new BadParameter('listPilots: query parameter pmgr is required');
    const opts = pageOpts(req);
    const known = parseKnown(req.query);
    const page = await heldPage(
      feedOf(s.sessionId, pmgr),
      opts.next ? undefined : parseHold(req.query),
      () => store().listPilots(s.sessionId, pmgr, opts),
      (state) => isFinal(pilotModel, state as PilotState),
    );
    // An empty page may mean a wrong manager id: say so (404) rather than poll an empty feed forever.
    if (page.items.length === 0) await store().getPilotManager(s.sessionId, pmgr);
    return {
      items: briefPage(page.items, known, pilotOut),
      cursor: page.cursor,
      ...(page.next ? { next: page.next } : {}),
    };
  },

  'GET /sessions/{sid}/pilots/{pid}': async (req) => {
    const s = await session(req);
    return pilotOut(await store().getPilot(s.sessionId, req.params.pid as string));
  },

  'POST /sessions/{sid}/pilots/cancel': async (req) => {
    const s = await session(req);
    let uids = strList(req.body, 'uids', 'cancelPilots');
    if (!uids) {
      const pmgr = str(req.body, 'pmgr', 'cancelPilots');
      uids = (await allItems((next) => store().listPilots(s.sessionId, pmgr, { next }))).map((p) => p.uid);
    }
    await store().getPilots(s.sessionId, uids); // 404 for unknown ones, before anything is cancelled
    await Promise.all(uids.map((pid) => cancelPilot(s.sessionId, pid, 'user')));
    return { cancelled: uids };
  },

  'POST /sessions/{sid}/umgrs': async (req) => {
    const s = await session(req);
    const scheduler = parseScheduler(req.body.scheduler);
    return once(req, s.sessionId, asIs(), async () => {
      const m = await store().createUnitManager(s.sessionId, scheduler);
      return { uid: m.uid, scheduler: m.scheduler, pilots: m.pilots };
    });
  },

  'GET /sessions/{sid}/umgrs': async (req) => {
    const s = await session(req);
    const page = await store().listUnitManagers(s.sessionId, pageOpts(req));
    return {
      items: page.items.map((m) => ({ uid: m.uid, scheduler: m.scheduler, pilots: m.pilots })),
      cursor: page.cursor,
      ...(page.next ? { next: page.next } : {}),
    };
  },

  'GET /sessions/{sid}/umgrs/{umid}': async (req) => {
    const s = await session(req);
    const m = await store().getUnitManager(s.sessionId, req.params.umid as string);
    return { uid: m.uid, scheduler: m.scheduler, pilots: m.pilots };
  },

  'POST /sessions/{sid}/umgrs/{umid}/pilots': async (req) => {
    const s = await session(req);
    const pilots = strList(req.body, 'pilots', 'addPilots') ?? [];
    if (pilots.length === 0) throw new BadParameter('addPilots.pilots: must name at least one pilot');
    await store().getPilots(s.sessionId, pilots);
    const m = await store().updateUnitManagerPilots(s.sessionId, req.params.umid as string, { add: pilots });
    if (bindsLate(m.scheduler)) {
      // The pilots' pulls take units from this manager's queue from now on; wake them if they are active.
      await Promise.all(pilots.map((pid) => store().patchPilot(s.sessionId, pid, { joinQueue: m.uid })));
      await wakeQueue(s.sessionId, m.uid);
    }
    return { uid: m.uid, pilots: m.pilots };
  },

  'POST /sessions/{sid}/umgrs/{umid}/pilots/remove': async (req) => {
    // RP's remove_pilots(pilot_ids, drain=True): the pilots take no new units of this manager. With
    // drain, the manager's units already bound to them run on (RP's docstring: allowed to finish);
    // without, they are cancelled (RP: its ACTIVE units are canceled). The pilots themselves run on.
    const s = await session(req);
    const umid = req.params.umid as string;
    const pilots = strList(req.body, 'pilots', 'removePilots') ?? [];
    if (pilots.length === 0) throw new BadParameter('removePilots.pilots: must name at least one pilot');
    if (req.body.drain !== undefined && typeof req.body.drain !== 'boolean')
      throw new BadParameter(
        `removePilots.drain: must be true or false, got ${JSON.stringify(req.body.drain)}`,
      );
    await store().getPilots(s.sessionId, pilots);
    const before = await store().getUnitManager(s.sessionId, umid);
    const foreign = pilots.filter((p) => !before.pilots.includes(p));
    if (foreign.length)
      throw new BadParameter(`removePilots.pilots: ${foreign.join(', ')} not added to ${umid}`, {
        obj: foreign[0] as string,
      });
    const m = await store().updateUnitManagerPilots(s.sessionId, umid, { remove: pilots });
    // A backfilling manager's queue: their pulls take no more units from it (those they hold run on).
    if (bindsLate(m.scheduler))
      await Promise.all(pilots.map((pid) => store().patchPilot(s.sessionId, pid, { leaveQueue: umid })));
    let cancelled: CancelOutcome = { cancelled: 0, signalled: 0 };
    if (req.body.drain === false) {
      // Read after the removal: no unit of this manager can be bound to these pilots any more.
      const bound = await Promise.all(
        pilots.map((pid) => allItems((next) => store().listPilotUnits(s.sessionId, pid, { next }))),
      );
      const mine = bound.flat().filter((u) => u.umgr === umid);
      cancelled = await cancelUnitRecords(s.sessionId, mine, `cancelled: pilot removed from ${umid}`);
    }
    return { uid: m.uid, pilots: m.pilots, ...cancelled };
  },

  'POST /sessions/{sid}/umgrs/{umid}/units': async (req) => {
    // The submission's reads write nothing: started now, they overlap the token check and the request's
    // claim (three round trips fewer before the first write); their answer is used only after both
    // passed, and dropped unseen if either fails.
    // `pilots`: the manager's pilots as the client believes them to be, read with the manager in one
    // request (see submitReads); malformed, it is ignored here and refused after the token check.
    const hint = pilotsHint(req.body.pilots);
    const reads = submitReads(
      req.params.sid as string,
      req.params.umid as string,
      Array.isArray(hint) ? hint : undefined,
    );
    reads.catch(() => {});
    const s = await session(req);
    if (hint instanceof BadParameter) throw hint;
    const descriptions = parseSubmission(s.sessionId, req.body.descriptions);
    // The units' uids are reserved beside the request's claim, not after it: one round trip fewer before
    // the units are written. A closed session refuses the reservation, and so the request (4xx).
    const reserved = store().reserveIds(s.sessionId, 'unit', descriptions.length);
    reserved.catch(() => {});
    // A repeat re-reads the units: the claim holds only their uids (5,000 fit; their records would not).
    // It queues again those no agent has claimed: the first attempt may have died between writing them
    // and queueing them (its answer is settled in between).
    const replay: Replay<{ items: ReturnType<typeof unitOut>[] }> = {
      save: (a) => a.items.map((u) => u.uid),
      load: async (uids) => {
        const units = await store().getUnits(s.sessionId, uids as string[]);
        return { items: (await requeueUnclaimed(s.sessionId, units)).map(unitOut) };
      },
    };
    let created = false;
    try {
      return await once(req, s.sessionId, replay, async (settled) => {
        const umid = req.params.umid as string;
        // The answer is settled as soon as the units are written (it names their uids; a repeat re-reads
        // them), beside their queueing rather than after it.
        const units = await submitParsed(s.sessionId, umid, descriptions, reads, reserved, (us) =>
          settled({ items: us.map(unitOut) }),
        );
        created = true;
        return { items: units.map(unitOut) };
      });
    } catch (err) {
      // Refused (4xx) before anything was written: the uids go back (below). A 5xx may have written them.
      if (!(err instanceof PilotException && err.httpStatus < 500)) created = true;
      throw err;
    } finally {
      // A repeat answered from the first attempt, or a refusal, used none of the uids it reserved: they go
      // back unless a later submission reserved after them (then they stay a gap: never a duplicate).
      if (!created)
        await reserved.then(
          (uids) =>
            store()
              .returnIds(s.sessionId, 'unit', uids)
              .catch((e: unknown) => logger.warn('reserved uids not returned', { error: String(e) })),
          () => {}, // refused: nothing was reserved
        );
    }
  },

  'GET /sessions/{sid}/umgrs/{umid}/units': async (req) => {
    const s = await session(req);
    const umid = req.params.umid as string;
    const opts = pageOpts(req);
    // `known`: the records the client has read go in brief (core/wire.ts BriefRecord).
    const known = parseKnown(req.query);
    // `wait` + `newer` (+ `until`): a long poll (functions/lib/changes.ts) on the manager's change feed.
    const page = await heldPage(
      feedOf(s.sessionId, umid),
      opts.next ? undefined : parseHold(req.query),
      () => store().listUnits(s.sessionId, umid, opts),
      (state) => isFinal(unitModel, state as UnitState),
    );
    if (page.items.length === 0) await store().getUnitManager(s.sessionId, req.params.umid as string);
    return {
      items: briefPage(page.items, known, unitOut),
      cursor: page.cursor,
      ...(page.next ? { next: page.next } : {}),
    };
  },

  'POST /sessions/{sid}/transfers': async (req) => {
    const s = await session(req);
    return sessionTransfer(s.sessionId, req.body);
  },

  'POST /sessions/{sid}/units/cancel': async (req) => {
    const s = await session(req);
    const uids = strList(req.body, 'uids', 'cancelUnits') ?? [];
    if (uids.length > MAX_UNITS_PER_REQUEST)
      throw new BadParameter(
        `cancelUnits.uids: at most ${MAX_UNITS_PER_REQUEST} per request, got ${uids.length}`,
      );
    const umgr = typeof req.body.umgr === 'string' ? req.body.umgr : undefined;
    const units = await unitsOf(s.sessionId, umgr, uids);
    return cancelUnitRecords(s.sessionId, units, 'cancelled by user');
  },
});
