/**
 * Who may call what. A session token (`<sid>~<secret>`) opens only its own session's routes; a pilot
 * token (`<sid>~<pid>~<secret>`) opens only the agent routes of its own pilot. A token for another
 * session gets 403, a bad or missing one 401; stored hashes only, compared in constant time.
 *
 * Tokens die with their objects (403): a closed session's token opens only {@link AFTER_CLOSE}, and an
 * ended pilot's token opens nothing, so neither a leaked token nor a late agent can change what ended.
 */
import { ENDPOINT_ID } from '../../core/endpoints.ts';
import { AuthenticationFailed, DoesNotExist, PermissionDenied } from '../../core/errors.ts';
import { isFinal, pilotModel } from '../../core/states.ts';
import { ENV } from '../../stacks/manifest.ts';
import type { EndpointRecord } from '../../store/endpoints.ts';
import type { PilotRecord, SessionRecord } from '../../store/records.ts';
import { bearerParts, secretMatches } from './secrets.ts';
import { store } from './store.ts';
import { chargeTo } from './usage.ts';

/**
 * What a closed session's token still opens: the reads its owner needs to collect results after close
 * (and from a later process, which attaches with reconnect), and close itself, so a retried close is not
 * an error. Everything that creates, cancels or changes is refused.
 */
export const AFTER_CLOSE: ReadonlySet<string> = new Set([
  'GET /sessions/{sid}',
  'POST /sessions/{sid}/reconnect',
  'POST /sessions/{sid}/close',
  'GET /sessions/{sid}/pmgrs',
  'GET /sessions/{sid}/pilots',
  'GET /sessions/{sid}/pilots/{pid}',
  'GET /sessions/{sid}/umgrs',
  'GET /sessions/{sid}/umgrs/{umid}',
  'GET /sessions/{sid}/umgrs/{umid}/units',
  'GET /sessions/{sid}/resources',
  'GET /sessions/{sid}/contexts',
  'GET /sessions/{sid}/resources/{key}',
  'GET /sessions/{sid}/endpoints',
]);

/**
 * Session routes whose token check may use a session this container read up to {@link tokenCacheMs} ago
 * (store/record-cache.ts): those a client calls per unit or per poll. Each is safe with a session closed
 * in another container meanwhile: the reads are open after close anyway ({@link AFTER_CLOSE}), and the
 * submission's first write (its uids' reservation) is guarded on the session being open, so a closed
 * session still refuses it (4xx). Every other route reads the session.
 */
export const TOKEN_CACHED_SESSION_ROUTES: ReadonlySet<string> = new Set([
  'GET /sessions/{sid}/pilots',
  'GET /sessions/{sid}/umgrs/{umid}/units',
  'POST /sessions/{sid}/umgrs/{umid}/units',
]);

/**
 * How long (ms) a session or pilot read for a token check may be used again by this container (env
 * `SORTIE_TOKEN_CACHE_MS`, default 1000; 0 reads every time). This container's own writes to the record
 * drop it at once, so only a change made by another container is seen up to this late.
 */
export function tokenCacheMs(): number {
  const v = Number(process.env[ENV.tokenCacheMs] ?? DEFAULT_TOKEN_CACHE_MS);
  return Number.isFinite(v) && v >= 0 ? v : DEFAULT_TOKEN_CACHE_MS;
}
const DEFAULT_TOKEN_CACHE_MS = 1_000;

/**
 * Checks the session token against the `{sid}` of the path; returns the session. Once the session is
 * closed, only the routes in {@link AFTER_CLOSE} pass (`routeKey` is the route asked for). The routes of
 * {@link TOKEN_CACHED_SESSION_ROUTES} may be answered from a session read shortly before.
 */
export async function authSession(
  headers: Record<string, string | undefined>,
  sid: string | undefined,
  routeKey: string,
): Promise<SessionRecord> {
  const [tokenSid, secret] = bearerParts(headers, 2) as [string, string];
  if (sid !== undefined && tokenSid !== sid)
    throw new PermissionDenied(`this token is for another session, not ${sid}`, { obj: sid });
  let session: SessionRecord;
  try {
    session = await store().getSession(
      tokenSid,
      TOKEN_CACHED_SESSION_ROUTES.has(routeKey) ? { maxAgeMs: tokenCacheMs() } : {},
    );
  } catch (err) {
    if (err instanceof DoesNotExist) throw new AuthenticationFailed('invalid session token');
    throw err;
  }
  if (!secretMatches(secret, session.tokenHash)) throw new AuthenticationFailed('invalid session token');
  chargeTo(session.sessionId);
  if (session.state === 'closed' && !AFTER_CLOSE.has(routeKey))
    throw new PermissionDenied(
      `session ${session.sessionId} is closed: its token only reads (${routeKey} refused)`,
      { obj: session.sessionId },
    );
  return session;
}

/**
 * Checks a pilot token; returns the pilot, which is not final (an ended pilot's token is revoked).
 * `cached`: the pilot may be one this container read up to {@link tokenCacheMs} ago — for the routes an
 * agent calls per unit (pull, starts, reports). Their writes stay safe with a pilot that ended in another
 * container meanwhile: each is a guarded write per unit, bound to this pilot and to the state it leaves,
 * and the sweep at the pilot's end has moved or ended every unit bound to it (the same race a fresh read
 * followed by the write always had); the commands they carry come at the latest that much later, and a
 * cancel also wakes a waiting pull, which then reads the pilot afresh.
 */
export async function authAgent(
  headers: Record<string, string | undefined>,
  cached = false,
): Promise<PilotRecord> {
  const [sid, pid, secret] = bearerParts(headers, 3) as [string, string, string];
  let pilot: PilotRecord;
  try {
    pilot = await store().getPilot(sid, pid, cached ? { maxAgeMs: tokenCacheMs() } : {});
  } catch (err) {
    if (err instanceof DoesNotExist) throw new AuthenticationFailed('invalid pilot token');
    throw err;
  }
  if (!secretMatches(secret, pilot.secretHash)) throw new AuthenticationFailed('invalid pilot token');
  chargeTo(sid);
  // Its units were swept when it ended: a late or forged report must not undo the sweep.
  if (isFinal(pilotModel, pilot.state))
    throw new PermissionDenied(`pilot ${pid} is ${pilot.state}: its token is revoked, the agent must stop`, {
      obj: pid,
    });
  return pilot;
}

/**
 * Checks an endpoint token (`<sid>~endpoint.<hex>~<secret>`); returns the endpoint, which is open. Session
 * and pilot tokens never pass (wrong shape, or no endpoint of that id), nor does an endpoint token pass
 * {@link authSession} or {@link authAgent}. A closed endpoint's token is revoked (403), and so is the token
 * of an endpoint whose session is closed once nothing waits for it: the cancels the session's close left
 * for it must still reach it, nothing else.
 */
export async function authEndpoint(headers: Record<string, string | undefined>): Promise<EndpointRecord> {
  const [sid, eid, secret] = bearerParts(headers, 3) as [string, string, string];
  if (!ENDPOINT_ID.test(eid)) throw new AuthenticationFailed('invalid endpoint token');
  let endpoint: EndpointRecord;
  try {
    endpoint = await store().getEndpoint(sid, eid);
  } catch (err) {
    if (err instanceof DoesNotExist) throw new AuthenticationFailed('invalid endpoint token');
    throw err;
  }
  if (!secretMatches(secret, endpoint.secretHash)) throw new AuthenticationFailed('invalid endpoint token');
  if (endpoint.state === 'closed')
    throw new PermissionDenied(`endpoint ${eid} is closed: its token is revoked`, { obj: eid });
  // It dies with its session too, once it has served what the session's end left for it (the cancels).
  const session = await store().getSession(sid);
  if (
    session.state === 'closed' &&
    (await store().pendingEndpointRequests(sid, endpoint.resource)).length === 0
  )
    throw new PermissionDenied(
      `session ${sid} is closed and nothing waits for endpoint ${eid}: its token is revoked`,
      {
        obj: eid,
      },
    );
  return endpoint;
}
