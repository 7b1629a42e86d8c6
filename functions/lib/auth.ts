/**
 * Who may call what. A session token (`<sid>~<secret>`) opens only its own session's routes; a pilot
 * token (`<sid>~<pid>~<secret>`) opens only the agent routes of its own pilot. A token for another
 * session gets 403, a bad or missing one 401; stored hashes only, compared in constant time.
 */
import { AuthenticationFailed, DoesNotExist, PermissionDenied } from '../../core/errors.ts';
import type { PilotRecord, SessionRecord } from '../../store/records.ts';
import { bearerParts, secretMatches } from './secrets.ts';
import { store } from './store.ts';

/** Checks the session token against the `{sid}` of the path; returns the session. */
export async function authSession(
  headers: Record<string, string | undefined>,
  sid: string | undefined,
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
  return session;
}

/** Checks a pilot token; returns the pilot. */
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
  return pilot;
}
