/**
 * The `sortie` CLI, each command run as a real process against a live embedded backend: `run` on the
 * example workloads (exit codes, the saved session, the summary), then the session commands on what it ran.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, type UnitManager } from '../client/index.ts';
import { UnitState } from '../core/states.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { killUnitProcesses } from './e2e.ts';
import { cli } from './support/cli.ts';

let backend: Backend;
const scratch = mkdtempSync(path.join(os.tmpdir(), 'sortie-cli-'));
const opened: { uid: string; token: string }[] = [];

beforeAll(async () => {
  backend = await startBackend({ heartbeatSeconds: 10 });
});
afterAll(async () => {
  for (const { uid, token } of opened) {
    const s = await Session.reconnect(uid, { endpoint: backend.apiUrl, token }).catch(() => undefined);
    if (s && !s.closed) await s.close({ timeout: 20 }).catch(() => {});
    killUnitProcesses(uid);
  }
  await backend?.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** The environment of one CLI "user": the API and a directory of their own for saved sessions. */
function user(name: string): Record<string, string> {
  return { SORTIE_API_URL: backend.apiUrl, SORTIE_DIR: path.join(scratch, name) };
}

interface Saved {
  uid: string;
  token: string;
  apiUrl: string;
}

function saved(env: Record<string, string>): Saved {
  const s = JSON.parse(readFileSync(path.join(env.SORTIE_DIR as string, 'session.json'), 'utf8')) as Saved;
  opened.push(s);
  return s;
}

/** All units of a session, read through the SDK (not the CLI under test). */
async function unitsOf(s: Saved) {
  const session = await Session.reconnect(s.uid, { endpoint: backend.apiUrl, token: s.token });
  const umgrs = (await session.getUnitManagers()) as UnitManager[];
  const units = (await Promise.all(umgrs.map((m) => m.getUnits()))).flat();
  for (const m of umgrs) await m.close();
  return units;
}

describe('sortie run', () => {
  it('runs a JSON workload in a new session, saves the session 0600, prints the summary and exits 0 when all are DONE', async () => {
    const env = user('hello');
    const r = await cli(['run', 'examples/workloads/hello.json'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const s = saved(env);
    expect(statSync(path.join(env.SORTIE_DIR as string, 'session.json')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(env.SORTIE_DIR as string, 'sessions', `${s.uid}.json`)).mode & 0o777).toBe(
      0o600,
    );
    expect(s.apiUrl).toBe(backend.apiUrl);
    expect(r.stdout).toContain(`session ${s.uid}`);
    expect(r.stdout).toMatch(/5\/5 units \| Done 5 \|/); // the last plain progress line
    expect(r.stdout).toMatch(/│ Done +│ 5 +│ 100\.0 │/);
    const units = await unitsOf(s);
    expect(units.map((u) => u.state)).toEqual(Array(5).fill(UnitState.DONE));
    expect(units.filter((u) => u.stdout === 'hello world\n')).toHaveLength(4);
  });

  it('exits 1 when units fail, listing them with exit code and reason', async () => {
    const env = user('failing');
    const r = await cli(['run', 'examples/workloads/failing.yaml'], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/│ Done +│ 3 /);
    expect(r.stdout).toMatch(/│ Failed +│ 2 /);
    expect(r.stdout).toMatch(/│ unit\.000003 │ Failed │ 1 +│/);
    expect(r.stdout).toMatch(/│ unit\.000004 │ Failed │ 3 +│ no such input/);
    const units = await unitsOf(saved(env));
    expect(units.map((u) => u.state).sort()).toEqual(['Done', 'Done', 'Done', 'Failed', 'Failed']);
  });

  it('refuses a bad workload before creating anything: exit 2, naming the file, the entry, the field and the value', async () => {
    const env = user('bad');
    const file = path.join(scratch, 'bad.yaml');
    writeFileSync(
      file,
      'pilots:\n  - {resource: local.localhost, runtime: 10, cores: 2}\nunits:\n  - {executable: /bin/true}\n  - {executable: /bin/true, cores: -2}\n',
    );
    const r = await cli(['run', file], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'bad.yaml: units[1]: unit description cores: must be a positive integer, got -2',
    );
    expect(() => statSync(path.join(env.SORTIE_DIR as string, 'session.json'))).toThrow();

    writeFileSync(file, 'pilots: []\nunits:\n  - {executable: /bin/true, copies: 0}\n');
    const copies = await cli(['run', file], env);
    expect(copies.code).toBe(2);
    expect(copies.stderr).toContain(
      'bad.yaml: units[0].copies: must be a whole number from 1 to 100000, got 0',
    );

    writeFileSync(file, 'pilot: []\nunits: []\n');
    const key = await cli(['run', file], env);
    expect(key.code).toBe(2);
    expect(key.stderr).toContain('bad.yaml: pilot: unknown key');
  });

  it('without an API URL says how to get one (exit 2)', async () => {
    const r = await cli(['run', 'examples/workloads/hello.json'], {
      SORTIE_DIR: path.join(scratch, 'noapi'),
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--api: no Sortie API (pass --api URL or set SORTIE_API_URL');
  });
});
