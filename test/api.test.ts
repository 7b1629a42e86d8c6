/**
 * The HTTP API's contract, over raw HTTP (fetch) and through the SDK, on one embedded backend: bad
 * input is a 4xx whose message names the field and the value and creates nothing; unknown ids are 404;
 * a session's token opens only its own session (403 elsewhere, 401 without one); a pilot's token opens
 * only its own pilot's agent routes and units; limits are 4xx; and no bad input ever gets a 5xx.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthenticationFailed,
  BadParameter,
  type ComputePilot,
  type ComputeUnit,
  DoesNotExist,
  PermissionDenied,
  PilotManager,
  PilotState,
  Session,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { ROUTES } from '../stacks/manifest.ts';

let backend: Backend;

interface Reply {
  status: number;
  /** Parsed JSON, or the raw text when the body is not JSON. */
  body: unknown;
}

/** One raw request; `raw` sends a body as is (not JSON-encoded). */
async function call(
  method: string,
  route: string,
  opts: { token?: string; body?: unknown; raw?: string } = {},
): Promise<Reply> {
  const res = await fetch(backend.apiUrl + route, {
    method,
    headers: {
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      'content-type': 'application/json',
    },
    ...(opts.raw !== undefined
      ? { body: opts.raw }
      : opts.body !== undefined
        ? { body: JSON.stringify(opts.body) }
        : {}),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body };
}

/** The message of a Sortie error body ('' when the body is not one). */
function messageOf(r: Reply): string {
  const e = (r.body as { error?: { message?: unknown } } | undefined)?.error;
  return typeof e?.message === 'string' ? e.message : '';
}
function codeOf(r: Reply): string {
  const e = (r.body as { error?: { code?: unknown } } | undefined)?.error;
  return typeof e?.code === 'string' ? e.code : '';
}

/** A route key's path with its parameters filled in. */
function fill(routeKey: string, params: Record<string, string>): { method: string; path: string } {
  const [method, template] = routeKey.split(' ') as [string, string];
  return {
    method,
    path: template.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(params[name] ?? 'x')),
  };
}

const SESSION_ROUTES = Object.keys(ROUTES).filter((k) => k.includes(' /sessions/{sid}'));
const AGENT_ROUTES = Object.keys(ROUTES).filter((k) => k.includes(' /agent/'));

// Session A: two pilots, each with its own unit manager; session B: one pilot running one unit.
let a: Session;
let b: Session;
let pmgrA: PilotManager;
let a1: ComputePilot;
let a2: ComputePilot;
let umA1: UnitManager;
let umA2: UnitManager;
let unitA2: ComputeUnit;
let b1: ComputePilot;
let umB: UnitManager;
let unitB: ComputeUnit;
/** Pilot A1's agent token, as its launcher wrote it into agent.json. */
let agentTokenA1: string;

beforeAll(async () => {
  backend = await startBackend();
  const endpoint = backend.apiUrl;
  a = await Session.create({ endpoint, name: 'api-a' });
  b = await Session.create({ endpoint, name: 'api-b' });
  pmgrA = await PilotManager.create(a);
  [a1, a2] = (await pmgrA.submitPilots([
    { resource: 'local.localhost', runtime: 10, cores: 1 },
    { resource: 'local.localhost', runtime: 10, cores: 1 },
  ])) as [ComputePilot, ComputePilot];
  umA1 = await UnitManager.create(a, 'direct_submission');
  await umA1.addPilots(a1);
  umA2 = await UnitManager.create(a, 'direct_submission');
  await umA2.addPilots(a2);
  unitA2 = await umA2.submitUnits({ executable: '/bin/sleep', arguments: ['30'] });
  const pmgrB = await PilotManager.create(b);
  b1 = await pmgrB.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 1 });
  umB = await UnitManager.create(b, 'direct_submission');
  await umB.addPilots(b1);
  unitB = await umB.submitUnits({ executable: '/bin/sleep', arguments: ['30'] });
  await Promise.all([
    unitA2.wait({ state: UnitState.EXECUTING, timeout: 30 }),
    unitB.wait({ state: UnitState.EXECUTING, timeout: 30 }),
    pmgrA.waitPilots({ state: PilotState.ACTIVE, timeout: 30 }),
  ]);
  agentTokenA1 = (
    JSON.parse(readFileSync(path.join(a1.sandbox ?? '', 'agent.json'), 'utf8')) as { token: string }
  ).token;
});

afterAll(async () => {
  await Promise.all([a?.close({ timeout: 20 }), b?.close({ timeout: 20 })]);
  await backend?.close();
});

describe('bad input: 400 naming the field and the value, nothing created', () => {
  it('invalid unit descriptions', async () => {
    const cases: [unknown, string[]][] = [
      [{ executable: '/bin/true', cores: -2 }, ['cores', '-2']],
      [{ executable: '' }, ['executable', '""']],
      [{ executable: '/bin/true', colour: 'red' }, ['colour', 'unknown key', '"red"']],
      [
        { executable: '/bin/true', inputStaging: [{ source: 'a', action: 'Teleport' }] },
        ['action', 'Teleport'],
      ],
      [{ executable: '/bin/true', environment: { TEST: true } }, ['environment.TEST', 'true']],
      [{ arguments: ['x'] }, ['executable', 'required']],
    ];
    for (const [d, words] of cases) {
      // A valid unit first: the whole request is refused, so not even it may be created.
      const r = await call('POST', a.path(`/umgrs/${umA1.uid}/units`), {
        token: a.token,
        body: { descriptions: [{ executable: '/bin/true' }, d] },
      });
      expect(r.status, JSON.stringify(d)).toBe(400);
      expect(codeOf(r)).toBe('BadParameter');
      expect(messageOf(r)).toContain('[1]');
      for (const w of words) expect(messageOf(r), JSON.stringify(d)).toContain(w);
    }
    for (const body of [{}, { descriptions: [] }, { descriptions: 'x' }, { descriptions: [null] }]) {
      const r = await call('POST', a.path(`/umgrs/${umA1.uid}/units`), { token: a.token, body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(messageOf(r)).toMatch(/descriptions|unit description/);
    }
    const listed = await call('GET', a.path(`/umgrs/${umA1.uid}/units`), { token: a.token });
    expect(listed.status).toBe(200);
    expect((listed.body as { items: unknown[] }).items).toEqual([]);

    // The SDK refuses the same before sending; its error names the field too.
    await expect(umA1.submitUnits({ executable: '/bin/true', cores: -2 })).rejects.toThrow(BadParameter);
    await expect(umA1.submitUnits({ executable: '/bin/true', cores: -2 })).rejects.toThrow(/cores.*-2/);
    expect(await umA1.listUnits()).toEqual([]);

    // And the same route takes a valid request: the refusals above were about the input.
    const ok = await umA1.submitUnits({ executable: '/bin/true' });
    expect(await ok.wait({ timeout: 30 })).toBe(UnitState.DONE);
  });

  it('invalid pilot descriptions and an unknown resource', async () => {
    const pmgr = await PilotManager.create(a);
    const cases: [unknown, string[]][] = [
      [{ resource: 'nowhere.nohost', runtime: 10, cores: 1 }, ["unknown resource 'nowhere.nohost'"]],
      [{ resource: 'local.localhost', runtime: 10, cores: 0 }, ['cores', '0']],
      [{ resource: 'local.localhost', cores: 1 }, ['runtime', 'required']],
      [{ resource: 'local.localhost', runtime: 10, cores: 1, gpu: 1 }, ['gpu', 'unknown key']],
      // Sandboxes: never under /proc, /sys or /dev, no '..' escape, under the resource's valid roots, on
      // every resource (local.localhost forks right here: /proc once hung the backend in mkdirSync).
      ...(
        [
          ['/proc/self/sortie', 'must not be under /proc'],
          ['/sys/kernel/sortie', 'must not be under'],
          ['/tmp/../proc/sortie', "'..'"],
          ['/etc/sortie', 'valid roots'],
          ['sandbox', 'absolute'],
          ['/tmp/a b', 'path characters'],
        ] as const
      ).flatMap(([sandbox, why]) =>
        ['local.localhost', 'local.slurm'].map((resource): [unknown, string[]] => [
          { resource, runtime: 10, cores: 1, sandbox },
          ['sandbox', `'${sandbox}'`, why, resource],
        ]),
      ),
    ];
    for (const [d, words] of cases) {
      const r = await call('POST', a.path('/pilots'), {
        token: a.token,
        body: { pmgr: pmgr.uid, descriptions: [d] },
      });
      expect(r.status, JSON.stringify(d)).toBe(400);
      for (const w of words) expect(messageOf(r), JSON.stringify(d)).toContain(w);
    }
    // Server-side only (the SDK cannot know the resources): the SDK rethrows the typed error.
    await expect(pmgr.submitPilots({ resource: 'nowhere.nohost', runtime: 10, cores: 1 })).rejects.toThrow(
      /unknown resource 'nowhere\.nohost'/,
    );
    expect(await pmgr.listPilots()).toEqual([]);
  });

  it('malformed JSON and bodies that are not objects are 400', async () => {
    for (const raw of ['{"descriptions": [', 'not json', '[1,2]', '"text"', 'null', '42']) {
      const r = await call('POST', a.path(`/umgrs/${umA1.uid}/units`), { token: a.token, raw });
      expect(r.status, raw).toBe(400);
      expect(messageOf(r), raw).toMatch(/request body: (not valid JSON|must be a JSON object)/);
      const g = await call('POST', '/agent/states', { token: agentTokenA1, raw });
      expect(g.status, raw).toBe(400);
    }
  });
});

describe('unknown things', () => {
  it('unknown pilot, unit and manager ids are 404 naming the id', async () => {
    const cases: [string, string, unknown, string][] = [
      ['GET', a.path('/pilots/pilot.9999'), undefined, 'pilot.9999'],
      ['GET', a.path('/umgrs/umgr.9999'), undefined, 'umgr.9999'],
      ['POST', a.path('/pilots/cancel'), { uids: ['pilot.9999'] }, 'pilot.9999'],
      ['POST', a.path('/units/cancel'), { uids: ['unit.999999'] }, 'unit.999999'],
      ['POST', a.path('/units/cancel'), { umgr: umA1.uid, uids: [unitA2.uid] }, unitA2.uid],
      ['POST', a.path('/umgrs/umgr.9999/pilots'), { pilots: [a1.uid] }, 'umgr.9999'],
      ['POST', a.path(`/umgrs/${umA1.uid}/pilots`), { pilots: ['pilot.9999'] }, 'pilot.9999'],
      [
        'POST',
        a.path('/umgrs/umgr.9999/units'),
        { descriptions: [{ executable: '/bin/true' }] },
        'umgr.9999',
      ],
      [
        'POST',
        a.path('/pilots'),
        { pmgr: 'pmgr.9999', descriptions: [{ resource: 'local.localhost', runtime: 10, cores: 1 }] },
        'pmgr.9999',
      ],
      // A malformed escape in the path is an unknown id, not a crash of the server.
      ['GET', `${a.path('/pilots')}/%E0%A4%A`, undefined, '%E0%A4%A'],
    ];
    for (const [method, route, body, id] of cases) {
      const r = await call(method, route, { token: a.token, body });
      expect(r.status, `${method} ${route}`).toBe(404);
      expect(codeOf(r)).toBe('DoesNotExist');
      expect(messageOf(r), `${method} ${route}`).toContain(id);
    }
    await expect(umA1.cancelUnits(['unit.999999'])).rejects.toThrow(DoesNotExist);
    expect(unitB.state).toBe(UnitState.EXECUTING);
  });

  it('unknown routes are 404', async () => {
    for (const [method, route] of [
      ['GET', '/nope'],
      ['GET', '/'],
      ['DELETE', a.path()],
      ['PUT', '/sessions'],
      ['GET', '/agent/heartbeat'],
      ['POST', a.path(`/pilots/${a1.uid}/extra`)],
      ['POST', '/sessions/'],
    ] as const) {
      const r = await call(method, route, { token: a.token, ...(method === 'GET' ? {} : { body: {} }) });
      expect(r.status, `${method} ${route}`).toBe(404);
    }
  });

  it('a forged page token is 400, not a database error', async () => {
    const forged = Buffer.from(JSON.stringify({ x: 1 })).toString('base64url');
    for (const route of [a.path(`/umgrs/${umA1.uid}/units`), a.path(`/pilots?pmgr=${pmgrA.uid}&x=1`)]) {
      const r = await call('GET', `${route}${route.includes('?') ? '&' : '?'}next=${forged}`, {
        token: a.token,
      });
      expect(r.status, route).toBe(400);
      expect(messageOf(r)).toContain('page token');
    }
  });
});

describe('authentication and authorization', () => {
  const paramsB = () => ({ sid: b.uid, pid: b1.uid, umid: umB.uid });

  it("session A's token on every route of session B is 403, and B is untouched", async () => {
    expect(SESSION_ROUTES.length).toBeGreaterThan(10);
    for (const key of SESSION_ROUTES) {
      const { method, path: p } = fill(key, paramsB());
      const query = key.startsWith('GET /sessions/{sid}/pilots') ? `?pmgr=${b1.pilotManager.uid}` : '';
      // Bodies that B's own token would act on: cancel everything, close, submit.
      const body =
        method === 'POST' ? { uids: [b1.uid], pmgr: b1.pilotManager.uid, terminate: true } : undefined;
      const r = await call(method, p + query, { token: a.token, body });
      expect(r.status, key).toBe(403);
      expect(codeOf(r), key).toBe('PermissionDenied');
    }
    await expect(Session.reconnect(b.uid, { endpoint: backend.apiUrl, token: a.token })).rejects.toThrow(
      PermissionDenied,
    );
    const again = await Session.reconnect(b.uid, { endpoint: backend.apiUrl, token: b.token });
    expect(again.closed).toBe(false);
    // RP records the reconnect on the session.
    expect(again.lastReconnect?.getTime()).toBeGreaterThanOrEqual(again.created.getTime());
    await b1.refresh();
    expect(b1.state).toBe(PilotState.ACTIVE);
    await umB.getUnits();
    expect(unitB.state).toBe(UnitState.EXECUTING);
  });

  it('no token, a malformed one or a wrong secret is 401 on every route', async () => {
    const tokens = [undefined, 'garbage', `${b.uid}~wrong-secret`, `${b.uid}~${b1.uid}~wrong-secret`];
    for (const key of [...SESSION_ROUTES, ...AGENT_ROUTES]) {
      const { method, path: p } = fill(key, paramsB());
      for (const token of tokens) {
        // A pilot-shaped token on session routes and a session-shaped one on agent routes are both wrong.
        const r = await call(method, p, {
          ...(token ? { token } : {}),
          body: method === 'POST' ? {} : undefined,
        });
        expect(r.status, `${key} with ${token ?? 'no token'}`).toBe(401);
        expect(codeOf(r)).toBe('AuthenticationFailed');
      }
    }
    await expect(
      Session.reconnect('rp.session.none', { endpoint: backend.apiUrl, token: 'rp.session.none~x' }),
    ).rejects.toThrow(AuthenticationFailed);
    // A submission reads before its token is checked (to overlap the two): what it read is never the
    // answer, an unknown manager included.
    const submit = await call('POST', `/sessions/${b.uid}/umgrs/umgr.9999/units`, {
      token: `${b.uid}~wrong-secret`,
      body: { descriptions: [{ executable: '/bin/true' }] },
    });
    expect(submit.status).toBe(401);
    expect(codeOf(submit)).toBe('AuthenticationFailed');
  });

  it("a pilot's token opens only its own pilot's agent routes and units", async () => {
    // It is a real token: its own pilot's routes answer.
    const own = await call('POST', '/agent/states', { token: agentTokenA1, body: { updates: [] } });
    expect(own.status).toBe(200);
    // The same secret presented for another pilot (same session) or another session: 401.
    const [sid, , secret] = agentTokenA1.split('~') as [string, string, string];
    for (const forged of [`${sid}~${a2.uid}~${secret}`, `${b.uid}~${b1.uid}~${secret}`]) {
      for (const key of AGENT_ROUTES) {
        const r = await call('POST', fill(key, {}).path, { token: forged, body: { updates: [] } });
        expect(r.status, `${key} as ${forged.split('~')[1]}`).toBe(401);
      }
    }
    // Not a session token either, and a session token is not an agent token.
    expect((await call('GET', a.path(), { token: agentTokenA1 })).status).toBe(401);
    expect((await call('POST', '/agent/heartbeat', { token: a.token, body: {} })).status).toBe(401);

    // Reports about units bound to another pilot, or in another session, are refused and change nothing.
    const r = await call('POST', '/agent/states', {
      token: agentTokenA1,
      body: {
        updates: [
          { uid: unitA2.uid, state: 'Done', exitCode: 0, stdout: 'forged' },
          { uid: unitB.uid, state: 'Failed', exitCode: 1 },
        ],
      },
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ applied: 0, refused: 2 });
    await umA2.getUnits();
    await umB.getUnits();
    expect(unitA2.state).toBe(UnitState.EXECUTING);
    expect(unitA2.stdout ?? '').not.toContain('forged');
    expect(unitB.state).toBe(UnitState.EXECUTING);
    // Cancel commands for another pilot's unit do not reach this pilot's heartbeat.
    const hb = await call('POST', '/agent/heartbeat', { token: agentTokenA1, body: {} });
    expect(hb.status).toBe(200);
    expect(hb.body).toEqual({ cancelUnits: [], cancelPilot: false, seen: 0 });
  });
});

describe('revocation: tokens die with their objects', () => {
  it("a closed session's token only reads; an ended pilot's token opens nothing (no forged DONE over CANCELED)", async () => {
    // Prepare: session C with a pilot running a long unit, and that pilot's agent token.
    const c = await Session.create({ endpoint: backend.apiUrl, name: 'api-revoked' });
    const pmgr = await PilotManager.create(c);
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 1 });
    const umgr = await UnitManager.create(c, 'direct_submission');
    await umgr.addPilots(pilot);
    const unit = await umgr.submitUnits({ executable: '/bin/sleep', arguments: ['30'] });
    await unit.wait({ state: UnitState.EXECUTING, timeout: 30 });
    await pmgr.waitPilots({ state: PilotState.ACTIVE, timeout: 30 });
    const agentToken = (
      JSON.parse(readFileSync(path.join(pilot.sandbox ?? '', 'agent.json'), 'utf8')) as { token: string }
    ).token;
    // Act: close (cancels the pilot, which sweeps its unit to CANCELED).
    await c.close({ timeout: 30 });
    // Assess: the session's token still reads (all GET routes, reconnect, a repeated close) ...
    const params = { sid: c.uid, pid: pilot.uid, umid: umgr.uid, key: 'local.localhost' };
    for (const key of SESSION_ROUTES) {
      const { method, path: p } = fill(key, params);
      const query = key.startsWith('GET /sessions/{sid}/pilots') ? `?pmgr=${pmgr.uid}` : '';
      const r = await call(method, p + query, {
        token: c.token,
        ...(method === 'POST'
          ? { body: { descriptions: [{ executable: '/bin/true' }], pmgr: pmgr.uid } }
          : {}),
      });
      if (method === 'GET' || key.endsWith('/close') || key.endsWith('/reconnect')) {
        expect(r.status, key).toBe(200);
      } else {
        // ... and everything that creates, cancels or changes is 403, saying the session is closed.
        expect(r.status, key).toBe(403);
        expect(messageOf(r), key).toContain(`session ${c.uid} is closed`);
      }
    }
    const cancel = await call('POST', c.path('/units/cancel'), {
      token: c.token,
      body: { uids: [unit.uid] },
    });
    expect(cancel.status).toBe(403);
    expect(pilot.state).toBe(PilotState.CANCELED);
    const before = await call('GET', c.path(`/umgrs/${umgr.uid}/units`), { token: c.token });
    const swept = (before.body as { items: { uid: string; state: string; stdout?: string }[] }).items;
    expect(swept.map((u) => u.state)).toEqual([UnitState.CANCELED]);
    // The ended pilot's token: every agent route is 403, a forged DONE changes nothing.
    for (const key of AGENT_ROUTES) {
      const body =
        key === 'POST /agent/states'
          ? { updates: [{ uid: unit.uid, state: 'Done', exitCode: 0, stdout: 'forged' }] }
          : { state: 'Done' };
      const r = await call('POST', fill(key, {}).path, { token: agentToken, body });
      expect(r.status, key).toBe(403);
      expect(messageOf(r), key).toContain(`pilot ${pilot.uid} is Canceled`);
    }
    const after = await call('GET', c.path(`/umgrs/${umgr.uid}/units`), { token: c.token });
    expect(after.body).toEqual(before.body);
  });
});

describe('schedulers', () => {
  it('round_robin continues its cycle across submit calls, as RP keeps its index', async () => {
    const um = await UnitManager.create(a, 'round_robin');
    await um.addPilots([a1, a2]);
    const units: ComputeUnit[] = [];
    for (let i = 0; i < 4; i++) units.push(await um.submitUnits({ executable: '/bin/true' }));
    units.push(...(await um.submitUnits([{ executable: '/bin/true' }, { executable: '/bin/true' }])));
    const [first, second] = [units[0]?.pilotId, units[1]?.pilotId];
    expect(new Set([first, second])).toEqual(new Set([a1.uid, a2.uid]));
    expect(units.map((u) => u.pilotId)).toEqual([first, second, first, second, first, second]);
    // (Not waited for: A2's one core is busy with its 30 s unit; closing the session ends them.)
  });
});

describe('limits and garbage', () => {
  it('bodies over the limits are 4xx, and nothing is created', async () => {
    const pmgr = await PilotManager.create(a);
    const unit = { executable: '/bin/true' };
    const pilot = { resource: 'local.localhost', runtime: 10, cores: 1 };
    const cases: [string, string, unknown, RegExp][] = [
      ['POST', a.path(`/umgrs/${umA1.uid}/units`), { descriptions: Array(5001).fill(unit) }, /at most 5000/],
      ['POST', a.path('/pilots'), { pmgr: pmgr.uid, descriptions: Array(101).fill(pilot) }, /1-100/],
      ['POST', a.path('/units/cancel'), { uids: Array(5001).fill('unit.000000') }, /at most 5000/],
      ['POST', '/sessions', { name: 'n'.repeat(129) }, /session\.name/],
    ];
    const before = (await umA1.listUnits()).length;
    for (const [method, route, body, why] of cases) {
      const r = await call(method, route, {
        token: route.startsWith('/agent') ? agentTokenA1 : a.token,
        body,
      });
      expect(r.status, route).toBe(400);
      expect(messageOf(r), route).toMatch(why);
    }
    // Sizes DynamoDB or SQS would refuse (item 400 KB, key 2 KB, message 256 KiB) are the caller's error.
    const long = 'x'.repeat(3000);
    const sized: [string, string, unknown, RegExp][] = [
      [
        'POST',
        a.path(`/umgrs/${umA1.uid}/units`),
        { descriptions: [unit, { executable: '/bin/echo', arguments: ['x'.repeat(200_000)] }] },
        /unit description \[1\]: at most 131072 bytes/,
      ],
      [
        'POST',
        a.path('/pilots'),
        { pmgr: pmgr.uid, descriptions: [{ ...pilot, project: 'p'.repeat(20_000) }] },
        /pilot description: at most/,
      ],
      ['GET', a.path(`/umgrs/${long}`), undefined, /path parameter umid: at most 1024 bytes/],
      ['GET', a.path(`/pilots?pmgr=${long}`), undefined, /query parameter pmgr: at most 1024 bytes/],
      ['POST', a.path('/pilots/cancel'), { uids: [long] }, /cancelPilots\.uids\[0\]: at most 1024 bytes/],
      ['POST', a.path(`/umgrs/${umA1.uid}/pilots`), { pilots: [long] }, /addPilots\.pilots\[0\]/],
      ['POST', '/agent/states', { updates: [{ uid: long, state: 'Done' }] }, /states\.updates\[0\]/],
    ];
    for (const [method, route, body, why] of sized) {
      const token = route.startsWith('/agent') ? agentTokenA1 : a.token;
      const r = await call(method, route, { token, ...(body === undefined ? {} : { body }) });
      expect(r.status, route.slice(0, 80)).toBe(400);
      expect(messageOf(r), route.slice(0, 80)).toMatch(why);
    }
    const reports = Array.from({ length: 5001 }, (_, i) => ({ uid: `unit.${i}`, state: 'Done' }));
    const st = await call('POST', '/agent/states', { token: agentTokenA1, body: { updates: reports } });
    expect(st.status).toBe(400);
    expect(messageOf(st)).toMatch(/at most 5000/);
    // Beyond API Gateway's 10 MB payload limit: refused before any handler runs.
    const huge = await call('POST', a.path(`/umgrs/${umA1.uid}/units`), {
      token: a.token,
      raw: JSON.stringify({ descriptions: [{ executable: 'x'.repeat(11 * 1024 * 1024) }] }),
    }).catch((err: unknown) => ({ status: 0, body: String(err) }));
    expect(huge.status).toBe(413);

    expect(await pmgr.listPilots()).toEqual([]);
    expect((await umA1.listUnits()).length).toBe(before);
  });

  it('no bad input on any route ever gets a 5xx', async () => {
    // A session of its own: some of these bodies are valid for some routes (close is last).
    const c = await Session.create({ endpoint: backend.apiUrl, name: 'api-fuzz' });
    const pm = await PilotManager.create(c);
    const um = await UnitManager.create(c, 'round_robin');
    const bodies: (string | undefined)[] = [
      undefined,
      '',
      '{',
      'null',
      '[]',
      '"x"',
      '{"descriptions":"x","uids":"x","pilots":"x","pmgr":5,"scheduler":{},"name":5}',
      '{"descriptions":[null,5,"x",[]],"uids":[1,null],"pilots":[{}],"pmgr":"pmgr.9999"}',
      '{"descriptions":[{"executable":"/bin/true","cores":1e309}]}',
      '{"descriptions":[{"resource":"local.localhost","runtime":1e309,"cores":-0}],"pmgr":"pmgr.0000"}',
      '{"type":"ssh","userKey":5,"userId":[],"resource":{}}',
      '{"type":"ssh","userPass":"p","resource":"nowhere.nohost"}',
      '{"updates":[{"uid":"unit.000000","state":"Done","stdout":5}],"resourceDetail":"x","waitSeconds":"x"}',
      '{"updates":[{"uid":"unit.000000","state":"Executing","execLocations":"x","time":{}}]}',
      JSON.stringify({ deep: JSON.parse(`${'['.repeat(500)}${']'.repeat(500)}`) }),
    ];
    const queries = [
      '',
      '?since=x&next=y',
      `?pmgr=${pm.uid}&next=${Buffer.from('{"pk":1}').toString('base64url')}`,
    ];
    const idSets = [
      { sid: c.uid, pid: 'pilot.0000', umid: um.uid },
      { sid: c.uid, pid: '%ZZ', umid: 'u'.repeat(3000) },
    ];
    const routes = [
      ...SESSION_ROUTES.filter((k) => !k.endsWith('/close')),
      ...AGENT_ROUTES.filter((k) => k.endsWith('/states')),
      'POST /sessions/{sid}/close',
    ];
    const fiveHundreds: string[] = [];
    let calls = 0;
    for (const key of routes) {
      for (const ids of idSets) {
        const { method, path: p } = fill(key, ids);
        const raw = p.replace('%25ZZ', '%ZZ');
        for (const q of method === 'GET' ? queries : ['']) {
          for (const body of method === 'GET' ? [undefined] : bodies) {
            const token = key.includes('/agent/') ? agentTokenA1 : c.token;
            const r = await call(method, raw + q, { token, ...(body !== undefined ? { raw: body } : {}) });
            calls++;
            if (r.status >= 500)
              fiveHundreds.push(`${method} ${raw + q} ${body?.slice(0, 60)} → ${r.status}`);
            else expect(r.status, `${method} ${raw + q} ${body?.slice(0, 60)}`).toBeGreaterThanOrEqual(200);
          }
        }
      }
    }
    expect(fiveHundreds).toEqual([]);
    expect(calls).toBeGreaterThan(200);
    // The backend is still serving, and the fuzz session's managers hold nothing.
    expect((await call('GET', a.path(), { token: a.token })).status).toBe(200);
    expect(await pm.listPilots()).toEqual([]);
    expect(await um.listUnits()).toEqual([]);
  });
});
