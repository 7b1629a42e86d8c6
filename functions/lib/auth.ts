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
 * Checks the session token against the `{sid}` of the path; returns the session. Once the session is
 * closed, only the routes in {@link AFTER_CLOSE} pass (`routeKey` is the route asked for).
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
    session = await store().getSession(tokenSid);
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

/** Checks a pilot token; returns the pilot, which is not final (an ended pilot's token is revoked). */
export async function authAgent(headers: Record<string, string | undefined>): Promise<PilotRecord> {
  const [sid, pid, secret] = bearerParts(headers, 3) as [string, string, string];
  let pilot: PilotRecord;
  try {
    pilot = await store().getPilot(sid, pid);
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
