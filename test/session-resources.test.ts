/**
 * Resource configs per session, through the API of the embedded backend (RP's
 * `Session.add_resource_config` / `get_resource_config` / `list_resources`): a config a session adds is
 * validated by the resource-config schema, stored with the session and used by the launches of its
 * pilots (their units reach DONE); other sessions cannot see or use it; bad input is a 400 naming the
 * field and adds nothing; the `localhost` alias resolves wherever a resource is named.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BadParameter,
  Context,
  PilotManager,
  PilotState,
  Session,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';

let backend: Backend;
let a: Session;
let b: Session;

/** The shipped `local.localhost` config, as written in resources/local.json. */
const localhost = (
  JSON.parse(readFileSync(new URL('../resources/local.json', import.meta.url), 'utf8')) as Record<
    string,
    Record<string, unknown>
  >
).localhost as Record<string, unknown>;

/** A sandbox root of its own, so that a pilot's sandbox shows which config launched it. */
const sandboxRoot = mkdtempSync(path.join(os.tmpdir(), 'sortie-session-res-'));

/** A raw API call with session A's token; returns the status and the error message, if any. */
async function post(
  route: string,
  body: unknown,
  token = a.token,
): Promise<{ status: number; message: string }> {
  const res = await fetch(`${backend.apiUrl}${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const json = (await res.json()) as { error?: { message?: string } };
  return { status: res.status, message: json.error?.message ?? '' };
}

beforeAll(async () => {
  backend = await startBackend();
  a = await Session.create({ endpoint: backend.apiUrl, name: 'resources-a' });
  b = await Session.create({ endpoint: backend.apiUrl, name: 'resources-b' });
}, 60_000);

afterAll(async () => {
  await a?.close({ timeout: 30 }).catch(() => {});
  await b?.close({ timeout: 30 }).catch(() => {});
  await backend?.close();
});

describe('a resource config added by a session', () => {
  it('is used by the launch of its pilots, whose units reach DONE', async () => {
    const added = await a.addResourceConfig({
      'mine.box': {
        ...localhost,
        description: 'a copy of local.localhost with its own sandbox root',
        defaultSandbox: sandboxRoot,
      },
    });
    expect(added).toEqual(['mine.box']);
    expect(await a.listResources()).toEqual(expect.arrayContaining(['mine.box', 'local.localhost']));
    const config = await a.getResourceConfig('mine.box');
    expect(config).toMatchObject({ jobManager: 'fork', defaultSandbox: sandboxRoot, gpusPerNode: 0 });

    const pmgr = await PilotManager.create(a);
    const pilot = await pmgr.submitPilots({ resource: 'mine.box', runtime: 10, cores: 1 });
    const umgr = await UnitManager.create(a, 'direct_submission');
    await umgr.addPilots(pilot);
    const units = await umgr.submitUnits(
      Array.from({ length: 3 }, (_, i) => ({ executable: '/bin/echo', arguments: [`unit ${i}`] })),
    );
    await umgr.waitUnits({ timeout: 120 });
    for (const [i, u] of units.entries()) {
      expect(u.state, u.stderr).toBe(UnitState.DONE);
      expect(u.stdout).toContain(`unit ${i}`);
    }
    // Launched with this session's config: the sandbox lies under its root, not under $HOME.
    await pilot.refresh();
    expect(pilot.resource).toBe('mine.box');
    expect(pilot.sandbox).toBe(path.join(sandboxRoot, a.uid, pilot.uid));
    expect(existsSync(path.join(pilot.sandbox ?? '', 'agent.json'))).toBe(true);
    await pilot.cancel();
    expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
  }, 180_000);

  it('is invisible to another session, which cannot use it either', async () => {
    await a.addResourceConfig({ 'only.a': { ...localhost, description: "session A's" } });
    expect(await b.listResources()).not.toContain('only.a');
    await expect(b.getResourceConfig('only.a')).rejects.toThrow(BadParameter);
    await expect(b.getResourceConfig('only.a')).rejects.toThrow(/unknown resource 'only\.a'/);
    const pmgr = await PilotManager.create(b);
    await expect(pmgr.submitPilots({ resource: 'only.a', runtime: 10, cores: 1 })).rejects.toThrow(
      /unknown resource 'only\.a'/,
    );
    await expect(
      b.addContext(new Context('ssh', { userId: 'me', userPass: 'x', resource: 'only.a' })),
    ).rejects.toThrow(/unknown resource 'only\.a'/);
    expect(await pmgr.listPilots()).toEqual([]);
  });

  it('replaces a key for that session only, shipped ones included', async () => {
    await a.addResourceConfig({ 'local.ssh': { ...localhost, description: 'replaced', coresPerNode: 7 } });
    expect((await a.getResourceConfig('local.ssh')).coresPerNode).toBe(7);
    expect((await b.getResourceConfig('local.ssh')).coresPerNode).toBe(2);
  });

  it('can come from a file read on the client: <site>.json names become <site>.<name>', async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'sortie-res-file-')), 'resource_lab.json');
    writeFileSync(file, JSON.stringify({ box: localhost, big: { ...localhost, coresPerNode: 64 } }));
    expect(await a.addResourceConfig(file)).toEqual(['lab.big', 'lab.box']);
    expect((await a.getResourceConfig('lab.big')).coresPerNode).toBe(64);
    expect(await b.listResources()).not.toContain('lab.box');
    await expect(a.addResourceConfig(path.join(path.dirname(file), 'absent.json'))).rejects.toThrow(
      /cannot read resource config/,
    );
  });
});

describe('bad resource configs', () => {
  const route = () => a.path('/resources');

  it.each([
    [
      'no configs',
      {},
      /addResourceConfig\.configs: must be an object of resource name → config, got undefined/,
    ],
    ['a list', { configs: [localhost] }, /addResourceConfig\.configs: must be an object .*got a list/],
    ['no entries', { configs: {} }, /addResourceConfig\.configs: must hold 1-100 configs, got 0/],
    [
      'a bad site',
      { configs: { box: localhost }, site: 7 },
      /addResourceConfig\.site: must be a string, got 7/,
    ],
    ['a bare name', { configs: { box: localhost } }, /resource 'box': give the full key '<site>\.box'/],
    ['a bad key', { configs: { 'a b.c': localhost } }, /resource key "a b\.c": must be <site>\.<name>/],
    [
      'a bad field',
      { configs: { 'ok.one': localhost, 'bad.two': { ...localhost, coresPerNode: -1 } } },
      /resource 'bad\.two': coresPerNode: must be a positive integer/,
    ],
    [
      'an unknown field',
      { configs: { 'bad.three': { ...localhost, cores: 2 } } },
      /resource 'bad\.three'.*cores/,
    ],
    [
      'an oversized config',
      { configs: { 'bad.four': { ...localhost, notes: 'x'.repeat(40_000) } } },
      /addResourceConfig\.configs\['bad\.four'\]: at most 32768 bytes of JSON/,
    ],
  ])('%s is a 400 naming the field, and adds nothing', async (_name, body, message) => {
    const r = await post(route(), body);
    expect(r.status).toBe(400);
    expect(r.message).toMatch(message);
    const keys = await a.listResources();
    for (const k of ['ok.one', 'bad.two', 'bad.three', 'bad.four']) expect(keys).not.toContain(k);
  });

  it('the SDK refuses a bare name the same way', async () => {
    await expect(a.addResourceConfig({ box: localhost })).rejects.toThrow(BadParameter);
  });
});

describe("RP's resource aliases", () => {
  it('localhost stands for local.localhost in lookups and in pilot submission', async () => {
    const viaAlias = await a.getResourceConfig('localhost');
    expect(viaAlias).toEqual(await b.getResourceConfig('local.localhost'));
    const pmgr = await PilotManager.create(b);
    const pilot = await pmgr.submitPilots({ resource: 'localhost', runtime: 10, cores: 1 });
    // Stored under the key it stands for, so that launches and contexts look up the same name.
    expect(pilot.resource).toBe('local.localhost');
    const umgr = await UnitManager.create(b, 'direct_submission');
    await umgr.addPilots(pilot);
    const [unit] = await umgr.submitUnits([{ executable: '/bin/echo', arguments: ['aliased'] }]);
    await umgr.waitUnits({ timeout: 120 });
    expect(unit?.state, unit?.stderr).toBe(UnitState.DONE);
    await pilot.cancel();
    expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
  }, 180_000);
});
