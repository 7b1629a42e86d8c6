/**
 * Endpoint mode on the embedded backend, without the test bed: the token rules of the endpoint routes
 * (only endpoint tokens open them, and an endpoint token opens nothing else), bad answers are 4xx naming
 * the field, one process serves an endpoint at a time, and a pilot on a fork resource with the endpoint
 * access schema runs end to end through an in-process endpoint (client/endpoint.ts over this host's
 * shell), including a pilot submitted while no endpoint runs, which launches once one starts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAgentBundle } from '../agent/bundle.ts';
import { serveEndpoint } from '../client/endpoint.ts';
import { PilotManager, PilotState, Session, UnitManager, UnitState } from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { ROUTES } from '../stacks/manifest.ts';
import { until } from './e2e.ts';

let backend: Backend;
let session: Session;
let other: Session;
let endpoint: { uid: string; token: string };
let dir: string;
let bundle: string;

async function call(method: string, route: string, token?: string, body?: unknown) {
  const res = await fetch(backend.apiUrl + route, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  const b = parsed as { error?: { code?: string; message?: string } } & Record<string, unknown>;
  // Errors come as { error: { code, message } }: flattened here for the assertions.
  return {
    status: res.status,
    body: { ...b, code: b.error?.code, message: b.error?.message } as Record<string, unknown> & {
      code?: string;
      message?: string;
    },
  };
}

const ENDPOINT_ROUTES = Object.keys(ROUTES).filter((k) => k.includes(' /endpoint'));

/** A fork resource reached only through an endpoint (the agent runs on this host, as the endpoint's user). */
function forkEndpointConfig(sandbox: string) {
  return {
    description: 'this host through an endpoint',
    schemas: { endpoint: {} },
    defaultSchema: 'endpoint',
    jobManager: 'fork',
    coresPerNode: 2,
    validRoots: [sandbox],
    defaultSandbox: sandbox,
    launchMethods: { order: ['FORK'] },
  };
}

beforeAll(async () => {
  backend = await startBackend({ heartbeatSeconds: 8, jobCheckSeconds: 1, activateTimeoutSeconds: 60 });
  bundle = await buildAgentBundle();
  dir = mkdtempSync(path.join(tmpdir(), 'sortie-endpoint-'));
  session = await Session.create({ endpoint: backend.apiUrl });
  other = await Session.create({ endpoint: backend.apiUrl });
  await session.addResourceConfig({ 'mfa.fork': forkEndpointConfig(path.join(dir, 'sandbox')) });
  endpoint = await session.createEndpoint('mfa.fork');
}, 60_000);

afterAll(async () => {
  await session?.close({ timeout: 30 }).catch(() => {});
  await other?.close({ timeout: 10 }).catch(() => {});
  await backend?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('endpoint routes', () => {
  it('are in the manifest, open to endpoint tokens only', async () => {
    expect(ENDPOINT_ROUTES.sort()).toEqual(['GET /endpoint', 'POST /endpoint/answer', 'POST /endpoint/poll']);
    const pmgr = await PilotManager.create(session);
    const [pilot] = await pmgr.submitPilots([{ resource: 'mfa.fork', runtime: 5, cores: 1 }]);
    const agentLike = `${session.uid}~${pilot?.uid}~not-the-secret`;
    for (const key of ENDPOINT_ROUTES) {
      const [method, route] = key.split(' ') as [string, string];
      for (const token of [
        undefined,
        session.token,
        agentLike,
        `${session.uid}~endpoint.0000000000000000~x`,
      ]) {
        const r = await call(
          method,
          route,
          token,
          method === 'POST' ? { instance: 'x', waitSeconds: 0 } : undefined,
        );
        expect(r.status, `${key} with ${token}`).toBe(401);
        expect(r.body.code).toBe('AuthenticationFailed');
      }
    }
    // The endpoint token opens no session route and no agent route.
    for (const [method, route] of [
      ['GET', `/sessions/${session.uid}`],
      ['GET', `/sessions/${session.uid}/endpoints`],
      ['POST', '/agent/heartbeat'],
      ['POST', '/agent/pull'],
    ] as const) {
      const r = await call(method, route, endpoint.token, method === 'POST' ? {} : undefined);
      expect(r.status, route).toBe(401);
    }
    await pilot?.cancel();
    expect(await pilot?.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
    // Cancelled before any endpoint polled: its launch was withdrawn, so no endpoint will ever start it.
    expect(pilot?.log.join('\n')).toContain('launch request withdrawn');
  }, 90_000);

  it('refuses bad registrations and answers with 4xx naming the field', async () => {
    await expect(session.createEndpoint('local.localhost')).rejects.toThrow(
      /endpoint\.resource: 'local\.localhost' has no 'endpoint' access schema/,
    );
    await expect(session.createEndpoint('no.such')).rejects.toThrow(/no\.such/);
    // Another session's token cannot register one here.
    const r0 = await call('POST', `/sessions/${session.uid}/endpoints`, other.token, {
      resource: 'mfa.fork',
    });
    expect(r0.status).toBe(403);
    const bad = [
      [
        { pilotId: 'pilot.0000', op: 'launch', seq: 0, ok: true, job: { jobId: '1', sandbox: 'relative' } },
        'job.sandbox',
      ],
      [{ pilotId: 'pilot.0000', op: 'nap', seq: 0, ok: true }, 'op'],
      [{ pilotId: 'pilot.0000', op: 'check', seq: -1, ok: true }, 'seq'],
      [
        { pilotId: 'pilot.0000', op: 'check', seq: 0, ok: true, status: { state: 'sleeping' } },
        'status.state',
      ],
      [{ pilotId: 'pilot.0000', op: 'check', seq: 0, ok: false }, 'error'],
      [{ op: 'check', seq: 0, ok: true }, 'pilotId'],
    ] as const;
    for (const [body, field] of bad) {
      const r = await call('POST', '/endpoint/answer', endpoint.token, body);
      expect(r.status, field).toBe(400);
      expect(r.body.message).toContain(`endpoint answer.${field}`);
    }
    const r1 = await call('POST', '/endpoint/poll', endpoint.token, { instance: 'a', waitSeconds: 99 });
    expect(r1.status).toBe(400);
    expect(r1.body.message).toContain('waitSeconds');
    // An answer for a pilot of another session is 404: endpoints see only their own session.
    const r2 = await call('POST', '/endpoint/answer', endpoint.token, {
      pilotId: 'pilot.0099',
      op: 'cancel',
      seq: 0,
      ok: true,
    });
    expect(r2.status).toBe(404);
  });

  it('is served by one process at a time: a new one takes over, the old one is told 409', async () => {
    const a = await call('POST', '/endpoint/poll', endpoint.token, {
      instance: 'first',
      waitSeconds: 0,
      takeover: true,
    });
    expect(a.status).toBe(200);
    const b = await call('POST', '/endpoint/poll', endpoint.token, {
      instance: 'second',
      waitSeconds: 0,
      takeover: true,
    });
    expect(b.status).toBe(200);
    const old = await call('POST', '/endpoint/poll', endpoint.token, { instance: 'first', waitSeconds: 0 });
    expect(old.status).toBe(409);
    expect(old.body.message).toContain('another process');
    const list = await session.listEndpoints();
    expect(list.map((e) => e.uid)).toContain(endpoint.uid);
    expect(JSON.stringify(list)).not.toContain('secretHash');
  });

  it('dies with its endpoint: a closed endpoint token is 403', async () => {
    const extra = await session.createEndpoint('mfa.fork');
    expect((await call('GET', '/endpoint', extra.token)).status).toBe(200);
    await session.revokeEndpoint(extra.uid);
    const r = await call('GET', '/endpoint', extra.token);
    expect(r.status).toBe(403);
    expect(r.body.code).toBe('PermissionDenied');
    // Its session's close revokes it too (nothing waits for it there).
    const s2 = await Session.create({ endpoint: backend.apiUrl });
    await s2.addResourceConfig({ 'mfa.fork': forkEndpointConfig(path.join(dir, 'sandbox2')) });
    const e2 = await s2.createEndpoint('mfa.fork');
    expect((await call('GET', '/endpoint', e2.token)).status).toBe(200);
    await s2.close();
    const r3 = await call('GET', '/endpoint', e2.token);
    expect(r3.status).toBe(403);
    expect(r3.body.message).toContain('is closed and nothing waits for endpoint');
    // A pilot's id in the endpoint's place is no endpoint (and is left untouched).
    const r2 = await call('POST', `/sessions/${session.uid}/endpoints/pilot.0000/revoke`, session.token, {});
    expect(r2.status).toBe(404);
  });
});

describe('a pilot through an in-process endpoint', () => {
  it('waits while no endpoint runs, launches when one starts, runs units, and cancels through it', async () => {
    const pmgr = await PilotManager.create(session);
    const [pilot] = await pmgr.submitPilots([{ resource: 'mfa.fork', runtime: 5, cores: 2 }]);
    if (!pilot) throw new Error('no pilot');
    // No endpoint polls: the launch waits in the table and the pilot stays LAUNCHING.
    await until(
      'launch request pending',
      async () => {
        const r = await call('GET', '/endpoint', endpoint.token);
        return (r.body.pending as { pilotId: string; op: string }[]).some(
          (p) => p.pilotId === pilot.uid && p.op === 'launch',
        )
          ? true
          : undefined;
      },
      30_000,
      200,
    );
    // The Launch step waited a little for an answer, then left the pilot LAUNCHING with a note.
    await until(
      'launch wait logged',
      async () => {
        await pilot.refresh();
        return pilot.log.join('\n').includes('launch request waiting for the endpoint of mfa.fork')
          ? true
          : undefined;
      },
      60_000,
      250,
    );
    expect(pilot.state).toBe(PilotState.LAUNCHING);

    const stop = new AbortController();
    const served = serveEndpoint({
      apiUrl: backend.apiUrl,
      token: endpoint.token,
      agentBundle: bundle,
      stateFile: path.join(dir, 'state.json'),
      pollSeconds: 2,
      signal: stop.signal,
    });
    try {
      expect(await pilot.wait({ state: [PilotState.ACTIVE, PilotState.FAILED], timeout: 60 })).toBe(
        PilotState.ACTIVE,
      );
      // The agent may call in before the endpoint's answer is recorded: wait for the answer's log line.
      await until(
        'launch answer recorded',
        async () => {
          await pilot.refresh();
          return pilot.log.join('\n').includes('agent submitted by the endpoint') ? true : undefined;
        },
        30_000,
        200,
      );
      const umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
      const units = await umgr.submitUnits(
        Array.from({ length: 4 }, (_, i) => ({ executable: '/bin/echo', arguments: [`unit ${i}`] })),
      );
      await umgr.waitUnits({ timeout: 60 });
      for (const [i, u] of units.entries()) {
        expect(u.state, u.stderr).toBe(UnitState.DONE);
        expect(u.stdout).toContain(`unit ${i}`);
      }
      await pilot.cancel();
      expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
      // The endpoint answered the cancel: nothing is left pending for this pilot.
      const r = await call('GET', '/endpoint', endpoint.token);
      expect((r.body.pending as { pilotId: string }[]).filter((p) => p.pilotId === pilot.uid)).toEqual([]);
    } finally {
      stop.abort();
      await served;
    }
  }, 150_000);
});
