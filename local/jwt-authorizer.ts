/**
 * API Gateway's JWT authorizer, as the embedded HTTP API applies it to a route: the token comes from the
 * `Authorization` header (with or without `Bearer `), its signing keys from the issuer's OpenID discovery
 * document, and it must be signed with RSA (what API Gateway accepts), unexpired, from the issuer, and
 * for one of the audiences (`aud`, or `client_id` as access tokens carry it). Any failure is 401
 * `{"message":"Unauthorized"}`, as API Gateway answers, and the function is not invoked.
 */
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';

/** What a JWT authorizer checks (stacks/session-auth.ts `SessionAuth` of type jwt). */
export interface JwtAuthorizerConfig {
  issuer: string;
  audience: readonly string[];
}

/** Verifies the request's token; resolves to its claims, or undefined when the request is unauthorized. */
export type Authorize = (
  headers: Readonly<Record<string, string | undefined>>,
) => Promise<JWTPayload | undefined>;

/** The algorithms API Gateway's JWT authorizer accepts. */
const RSA = ['RS256', 'RS384', 'RS512'];

/** Reads `jwks_uri` from the issuer's discovery document, once; a failed read is retried on the next request. */
function discover(issuer: string): () => Promise<ReturnType<typeof createRemoteJWKSet>> {
  let keys: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;
  return () => {
    keys ??= (async () => {
      const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
      const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      if (!res.ok) throw new Error(`${url}: ${res.status}`);
      const { jwks_uri } = (await res.json()) as { jwks_uri?: string };
      if (!jwks_uri) throw new Error(`${url}: no jwks_uri`);
      return createRemoteJWKSet(new URL(jwks_uri), { timeoutDuration: 5_000 });
    })().catch((err: unknown) => {
      keys = undefined;
      throw err;
    });
    return keys;
  };
}

/** A JWT authorizer for one issuer and its audiences. */
export function jwtAuthorizer(config: JwtAuthorizerConfig): Authorize {
  const keys = discover(config.issuer);
  return async (headers) => {
    const raw = headers.authorization?.replace(/^Bearer\s+/i, '').trim();
    if (!raw) return undefined;
    try {
      const { payload } = await jwtVerify(raw, await keys(), { issuer: config.issuer, algorithms: RSA });
      const aud = [payload.aud ?? [], typeof payload.client_id === 'string' ? payload.client_id : []].flat();
      return aud.some((a) => config.audience.includes(a)) ? payload : undefined;
    } catch {
      return undefined;
    }
  };
}
