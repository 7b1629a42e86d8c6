/**
 * Deployments closed to strangers: who may open a session (a JWT authorizer on POST /sessions, as API
 * Gateway applies it, or IAM), and the per-session limit on pilots created per minute.
 *
 * The identity provider is the test's own: an RSA key pair and an OpenID discovery document + JWKS served
 * on 127.0.0.1; the embedded backend checks tokens against it as API Gateway's JWT authorizer would.
 */
import { randomUUID, type webcrypto } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthenticationFailed, BadParameter, PilotManager, Session, Throttled } from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { localClientConfig, startDynalite } from '../local/dynamodb.ts';
import { sessionAuthFrom } from '../stacks/session-auth.ts';
import { createTable, Store } from '../store/index.ts';

describe('who may open a session: the choice at synth', () => {
  it('is IAM when nothing is set, JWT when issuer and audience are, and refuses half a setting', () => {
    expect(sessionAuthFrom({})).toEqual({ type: 'iam' });
    expect(
      sessionAuthFrom({ SORTIE_JWT_ISSUER: 'https://cilogon.org', SORTIE_JWT_AUDIENCE: 'a, b' }),
    ).toEqual({ type: 'jwt', issuer: 'https://cilogon.org', audience: ['a', 'b'] });
    expect(() => sessionAuthFrom({ SORTIE_JWT_ISSUER: 'https://x.org' })).toThrow(/SORTIE_JWT_AUDIENCE/);
    expect(() => sessionAuthFrom({ SORTIE_JWT_AUDIENCE: 'a' })).toThrow(/SORTIE_JWT_ISSUER/);
    expect(() =>
      sessionAuthFrom({ SORTIE_JWT_ISSUER: 'http://127.0.0.1:1', SORTIE_JWT_AUDIENCE: 'a' }),
    ).toThrow(/https/);
    expect(
      sessionAuthFrom({ SORTIE_JWT_ISSUER: 'http://127.0.0.1:1', SORTIE_JWT_AUDIENCE: 'a' }, true).type,
    ).toBe('jwt');
  });
});

describe('a JWT authorizer on POST /sessions', () => {
  let idp: Server;
  let issuer: string;
  let backend: Backend;
  let sign: (
    claims: JWTPayload,
    opts?: { alg?: string; expired?: boolean; key?: webcrypto.CryptoKey },
  ) => Promise<string>;
  let otherKey: webcrypto.CryptoKey;

  beforeAll(async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    otherKey = (await generateKeyPair('RS256')).privateKey;
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    idp = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/.well-known/openid-configuration')
        return res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
      if (req.url === '/jwks') return res.end(JSON.stringify({ keys: [jwk] }));
      res.statusCode = 404;
      res.end('{}');
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
    sign = async (claims, opts = {}) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT(claims)
        .setProtectedHeader({ alg: opts.alg ?? 'RS256', kid: 'k1' })
        .setIssuer((claims.iss as string | undefined) ?? issuer)
        .setIssuedAt(opts.expired ? now - 7200 : now)
        .setExpirationTime(opts.expired ? now - 3600 : now + 3600)
        .sign(opts.key ?? privateKey);
    };
    // One backend per test file: the handlers keep one store client per process.
    backend = await startBackend({ sessionAuth: { issuer, audience: ['sortie'] }, pilotsPerMinute: 3 });
  }, 60_000);

  afterAll(async () => {
    await backend?.close();
    await new Promise((r) => idp?.close(r));
  });

  const create = (idToken?: string) =>
    Session.create({ endpoint: backend.apiUrl, retryBudgetMs: 0, ...(idToken ? { idToken } : {}) });

  it('refuses a request without credentials with 401, as API Gateway answers', async () => {
    const res = await fetch(`${backend.apiUrl}/sessions`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ message: 'Unauthorized' });
    await expect(create()).rejects.toThrow(AuthenticationFailed);
  });

  it('refuses tokens of another audience, expired, signed by another key, or from another issuer', async () => {
    for (const token of [
      await sign({ sub: 'ada', aud: 'someone-else' }),
      await sign({ sub: 'ada', aud: 'sortie' }, { expired: true }),
      await sign({ sub: 'ada', aud: 'sortie' }, { key: otherKey }),
      await sign({ sub: 'ada', aud: 'sortie', iss: 'https://evil.example' }),
      'not-a-jwt',
    ]) {
      await expect(create(token), token.slice(0, 20)).rejects.toThrow(AuthenticationFailed);
    }
  });

  it('opens a session for a valid token (aud, or client_id as access tokens carry it), whose own token guards the rest', async () => {
    for (const claims of [
      { sub: 'ada', aud: 'sortie' },
      { sub: 'ada', client_id: 'sortie' },
    ]) {
      const session = await create(await sign(claims));
      expect(session.uid).toMatch(/^rp\.session\./);
      // The session's routes take its own token, not the login's.
      const again = await Session.reconnect(session.uid, { endpoint: backend.apiUrl, token: session.token });
      expect(again.uid).toBe(session.uid);
      await session.close({ timeout: 30 });
    }
  });
  it('refuses a request for more pilots than a minute allows (400), before creating any', async () => {
    const session = await create(await sign({ sub: 'ada', aud: 'sortie' }));
    const pmgr = await PilotManager.create(session);
    const d = { resource: 'local.localhost', runtime: 5, cores: 1 };
    const err = await pmgr.submitPilots([d, d, d, d]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadParameter);
    expect(String(err)).toMatch(/at most 3 per minute per session; this request asks for 4/);
    expect(await pmgr.getPilots()).toEqual([]);
    await session.close({ timeout: 30 });
  }, 60_000);
});

describe('pilots created per minute, per session', () => {
  it('counts per session and minute: a full minute refuses with Throttled (429), the next minute has room', async () => {
    const db = await startDynalite();
    const client = new DynamoDBClient(localClientConfig(db.endpoint));
    try {
      const tableName = `sortie-test-${randomUUID()}`;
      await createTable(client, tableName);
      let now = new Date('2026-12-04T18:00:10Z');
      const store = new Store({ tableName, client, now: () => now });
      await store.takeQuota('rp.session.a', 'pilots', 2, 3);
      await expect(store.takeQuota('rp.session.a', 'pilots', 2, 3)).rejects.toThrow(Throttled);
      await expect(store.takeQuota('rp.session.a', 'pilots', 2, 3)).rejects.toThrow(
        /at most 3 pilots per minute; asked for 2 more in minute 2026-12-04T18:00Z/,
      );
      await store.takeQuota('rp.session.a', 'pilots', 1, 3); // a refused take took nothing
      await store.takeQuota('rp.session.b', 'pilots', 3, 3); // another session has its own
      now = new Date('2026-12-04T18:01:00Z');
      await store.takeQuota('rp.session.a', 'pilots', 3, 3);
    } finally {
      client.destroy();
      await db.close();
    }
  });
});
