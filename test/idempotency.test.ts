/**
 * Idempotent creation: a creating request repeated with its client request token creates nothing new and
 * gets the first answer. Faults are real: a small TCP proxy of our own on 127.0.0.1 lets the request
 * through to the embedded backend and drops the connection when the response starts, so the SDK sees a
 * network error after the API did the work, and retries.
 */
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { NoSuccess } from '../core/errors.ts';
import { dynamodb } from '../functions/lib/aws.ts';
import type { Request } from '../functions/lib/http.ts';
import { asIs, once } from '../functions/lib/idempotency.ts';
import { store } from '../functions/lib/store.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { ENV } from '../stacks/manifest.ts';
import { CLAIM_TTL_SECONDS, PENDING_TAKEOVER_SECONDS, Store } from '../store/index.ts';
import { dropProxy } from './support/drop-proxy.ts';

let backend: Backend;

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(backend.apiUrl + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  backend = await startBackend();
});
afterAll(async () => {
  await backend?.close();
});

describe('idempotent creation', () => {
  it('a lost response of POST /pilots and of POST /units: the retry creates nothing new, all units DONE', async () => {
    // Prepare: the SDK talks to the API through the proxy (the agent talks to it directly).
    const proxy = await dropProxy(new URL(backend.apiUrl), [/^POST \S+\/pilots$/, /^POST \S+\/units$/]);
    const session = await Session.create({ endpoint: proxy.url, name: 'idempotency' });
    try {
      const pmgr = await PilotManager.create(session);
      // Act
      const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
      const umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
      const units = await umgr.submitUnits(
        Array.from({ length: 10 }, (_, i) => ({ executable: '/bin/echo', arguments: [`u${i}`] })),
      );
      await umgr.waitUnits({ timeout: 120 });
      // Assess: both responses were really lost, and each request created its objects once.
      expect(proxy.dropped).toEqual([
        `POST /sessions/${session.uid}/pilots`,
        `POST /sessions/${session.uid}/umgrs/${umgr.uid}/units`,
      ]);
      expect(await pmgr.listPilots()).toEqual([pilot.uid]);
      expect(units.map((u) => u.uid)).toEqual(Array.from({ length: 10 }, (_, i) => `unit.00000${i}`));
      const listed = await umgr.listUnits();
      expect(listed).toEqual(units.map((u) => u.uid));
      expect(units.map((u) => u.state)).toEqual(units.map(() => UnitState.DONE));
      expect(units.map((u) => u.stdout?.trim())).toEqual(units.map((_, i) => `u${i}`));
    } finally {
      await session.close({ timeout: 30 });
      await proxy.close();
    }
  });

  it('a repeated token returns the first answer; another body with it is 400; no token creates anew', async () => {
    const token = 'tok_0123456789abcdef';
    const first = await post('/sessions', { name: 'once' }, { 'x-sortie-request-token': token });
    const again = await post('/sessions', { name: 'once' }, { 'x-sortie-request-token': token });
    expect(first.status).toBe(200);
    expect(again).toEqual(first);
    const other = await post('/sessions', { name: 'other' }, { 'x-sortie-request-token': token });
    expect(other.status).toBe(400);
    expect(JSON.stringify(other.body)).toContain('x-sortie-request-token');
    const bad = await post('/sessions', {}, { 'x-sortie-request-token': 'short' });
    expect(bad.status).toBe(400);
    expect((bad.body.error as { message: string }).message).toContain('got "short"');
    // The session of the first answer works; a repeat of a manager creation returns the same manager.
    const umgr = { scheduler: 'direct_submission' };
    const auth = { authorization: `Bearer ${first.body.token as string}` };
    const sid = first.body.uid as string;
    const m1 = await post(`/sessions/${sid}/umgrs`, umgr, {
      ...auth,
      'x-sortie-request-token': `${token}-m`,
    });
    const m2 = await post(`/sessions/${sid}/umgrs`, umgr, {
      ...auth,
      'x-sortie-request-token': `${token}-m`,
    });
    const m3 = await post(`/sessions/${sid}/umgrs`, umgr, auth);
    expect([m1.status, m2.status, m3.status]).toEqual([200, 200, 200]);
    expect(m2.body.uid).toBe(m1.body.uid);
    expect(m3.body.uid).not.toBe(m1.body.uid);
    // A refused request (4xx) created nothing and keeps no claim: its repeat runs again (400, not a wait).
    const units = `/sessions/${sid}/umgrs/${m1.body.uid as string}/units`;
    const u = { ...auth, 'x-sortie-request-token': `${token}-u` };
    expect((await post(units, { descriptions: [{}] }, u)).status).toBe(400);
    expect((await post(units, { descriptions: [{}] }, u)).status).toBe(400);
    await post(`/sessions/${sid}/close`, {}, auth);
  });

  it('uids stay dense: a repeat, or a submission refused after its uids were reserved, gives them back', async () => {
    // Prepare: a session with a backfilling manager (units wait in its queue, no pilot needed) and a
    // direct_submission one without a pilot (its submissions are refused after the uids are reserved).
    const s = await post('/sessions', { name: 'dense' });
    const auth = { authorization: `Bearer ${s.body.token as string}` };
    const sid = s.body.uid as string;
    const late = await post(`/sessions/${sid}/umgrs`, { scheduler: 'backfilling' }, auth);
    const direct = await post(`/sessions/${sid}/umgrs`, { scheduler: 'direct_submission' }, auth);
    const units = (m: { body: Record<string, unknown> }) =>
      `/sessions/${sid}/umgrs/${m.body.uid as string}/units`;
    const uids = (r: { body: Record<string, unknown> }) =>
      (r.body.items as { uid: string }[] | undefined)?.map((u) => u.uid);
    const three = { descriptions: [1, 2, 3].map(() => ({ executable: '/bin/true' })) };
    const token = { ...auth, 'x-sortie-request-token': 'tok_dense_0123456789' };
    // Act
    const first = await post(units(late), three, token);
    const repeat = await post(units(late), three, token);
    const refused = await post(units(direct), three, auth);
    const next = await post(units(late), three, auth);
    // Assess: the repeat got the first answer, the refusal named why, and no uid was skipped.
    expect(uids(first)).toEqual(['unit.000000', 'unit.000001', 'unit.000002']);
    expect(repeat).toEqual(first);
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toContain('no live pilot');
    expect(uids(next)).toEqual(['unit.000003', 'unit.000004', 'unit.000005']);
    await post(`/sessions/${sid}/close`, {}, auth);
  });

  it('a claim whose first attempt died is taken over by a repeat; an expired claim runs afresh', async () => {
    // Prepare: claims as a first attempt left them in the past (the same store, its clock set back): one
    // pending since before its takeover time (the attempt died: a Lambda stopped at its timeout), one done
    // but older than the claims' lifetime.
    const sha = (s: string) => createHash('sha256').update(s).digest('base64url');
    const claimAt = (secondsAgo: number) =>
      new Store({
        tableName: process.env[ENV.table] as string,
        client: dynamodb(),
        now: () => new Date(Date.now() - secondsAgo * 1000),
      });
    const dead = { token: 'tok_died_0123456789', body: { name: 'died' } };
    const old = { token: 'tok_old_0123456789ab', body: { name: 'old' } };
    const claimOf = (r: typeof dead) =>
      [`-#${sha(r.token)}`, `POST /sessions ${sha(JSON.stringify(r.body))}`] as const;
    const died = await claimAt(PENDING_TAKEOVER_SECONDS + 60).claimRequest(...claimOf(dead));
    const expiredStore = claimAt(CLAIM_TTL_SECONDS + 60);
    const expired = await expiredStore.claimRequest(...claimOf(old));
    if (!died.claimed || !expired.claimed) throw new Error('test claims not made');
    await expiredStore.settleRequest(claimOf(old)[0], expired.attempt, 'done', {
      uid: 'session.from-yesterday',
    });
    // Act
    const taken = await post('/sessions', dead.body, { 'x-sortie-request-token': dead.token });
    const repeat = await post('/sessions', dead.body, { 'x-sortie-request-token': dead.token });
    const late = await claimAt(0).settleRequest(claimOf(dead)[0], died.attempt, 'done', { uid: 'late' });
    const afresh = await post('/sessions', old.body, { 'x-sortie-request-token': old.token });
    // Assess: served (not 504), once; the dead attempt cannot overwrite the answer; the expired claim's
    // answer is not replayed.
    expect(taken.status).toBe(200);
    expect(taken.body.uid).toMatch(/^rp\.session\./);
    expect(repeat).toEqual(taken);
    expect(late).toBe(false);
    expect(afresh.status).toBe(200);
    expect(afresh.body.uid).not.toBe('session.from-yesterday');
    expect(afresh.body.uid).toMatch(/^rp\.session\./);
    for (const b of [taken.body, afresh.body])
      await post(`/sessions/${b.uid as string}/close`, {}, { authorization: `Bearer ${b.token as string}` });
  });
});

describe('once: an answer settled before the work ends (a submission queueing the units it wrote)', () => {
  /** A creating request as a route sees it, with a fresh client request token. */
  function request(): { req: Request; key: string } {
    const token = randomUUID().replaceAll('-', '');
    const req = {
      event: { routeKey: 'POST /sessions/{sid}/umgrs/{umid}/units' },
      params: {},
      query: {},
      headers: { 'x-sortie-request-token': token },
      body: { descriptions: [] },
    } as unknown as Request;
    return { req, key: `settle-early#${createHash('sha256').update(token).digest('base64url')}` };
  }

  it('the claim is done while the work still runs; a failure after it leaves it done, and a repeat gets the answer without running', async () => {
    const { req, key } = request();
    await once(req, 'settle-early', asIs<{ n: number }>(), async (settled) => {
      settled({ n: 1 });
      await vi.waitFor(async () => expect((await store().getRequest(key))?.status).toBe('done'));
      return { n: 1 };
    });
    const failing = request();
    await expect(
      once(failing.req, 'settle-early', asIs<{ n: number }>(), async (settled) => {
        settled({ n: 2 });
        throw new NoSuccess('queueing failed after the units were written');
      }),
    ).rejects.toThrow('queueing failed');
    expect((await store().getRequest(failing.key))?.status).toBe('done');
    const again = await once(failing.req, 'settle-early', asIs<{ n: number }>(), async () => {
      throw new Error('a repeat must not run');
    });
    expect(again).toEqual({ n: 2 });
  });
});
