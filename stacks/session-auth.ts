/**
 * Who may open a session. Every other route is guarded by the tokens Sortie issues (session, pilot); the
 * one route that issues a session token must itself be closed, or anyone who finds the API could run
 * pilots on the sites its users' contexts reach. The deployment chooses, at synth, from its environment:
 *
 * - `SORTIE_JWT_ISSUER` + `SORTIE_JWT_AUDIENCE` set: API Gateway's JWT authorizer on `POST /sessions`.
 *   Any OpenID Connect provider works (Cognito, CILogon, Globus Auth, Keycloak, Auth0): the SDK sends the
 *   user's ID or access token (`Session.create({ idToken })` or env SORTIE_ID_TOKEN).
 * - neither set: the IAM authorizer, so only AWS principals allowed `execute-api:Invoke` on that route
 *   (the deploying account's admins, or a role you grant) can open sessions — closed by default.
 *
 * The embedded backend applies the same JWT check when the same two variables are set, and none
 * otherwise (it listens on 127.0.0.1 only).
 */
import { BadParameter } from '../core/errors.ts';

/** The route that creates sessions, the only one behind the authorizer. */
export const SESSION_ROUTE = 'POST /sessions';

/** Environment variables that choose the JWT authorizer. */
export const SESSION_AUTH_ENV = { issuer: 'SORTIE_JWT_ISSUER', audience: 'SORTIE_JWT_AUDIENCE' } as const;

/** How `POST /sessions` is guarded. */
export type SessionAuth = { type: 'jwt'; issuer: string; audience: string[] } | { type: 'iam' };

/**
 * The guard the environment asks for. `audience` is a comma-separated list.
 * @param allowHttp accept an `http:` issuer (only for the embedded backend's tests on 127.0.0.1)
 * @throws BadParameter naming the variable when only one is set or the issuer is not an https URL
 */
export function sessionAuthFrom(
  env: Readonly<Record<string, string | undefined>>,
  allowHttp = false,
): SessionAuth {
  const issuer = env[SESSION_AUTH_ENV.issuer]?.trim() ?? '';
  const audience = (env[SESSION_AUTH_ENV.audience] ?? '')
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  if (!issuer && audience.length === 0) return { type: 'iam' };
  if (!issuer || audience.length === 0) {
    const missing = issuer ? SESSION_AUTH_ENV.audience : SESSION_AUTH_ENV.issuer;
    throw new BadParameter(
      `${missing}: required with the other of ${Object.values(SESSION_AUTH_ENV).join(', ')}, got nothing`,
    );
  }
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new BadParameter(`${SESSION_AUTH_ENV.issuer}: not a URL, got ${JSON.stringify(issuer)}`);
  }
  if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:'))
    throw new BadParameter(`${SESSION_AUTH_ENV.issuer}: must be an https URL, got ${JSON.stringify(issuer)}`);
  return { type: 'jwt', issuer, audience };
}
