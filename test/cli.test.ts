/**
 * The `sortie` CLI, each command run as a real process against a live embedded backend: `run` on the
 * example workloads (exit codes, the saved session, the summary), then the session commands on what it ran.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, type UnitManager } from '../client/index.ts';
import { UnitState } from '../core/states.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { killUnitProcesses, until } from './e2e.ts';
import { cli, startCli } from './support/cli.ts';

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

describe('sortie run', { timeout: 300_000 }, () => {
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

  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    'on a terminal shows the progress bar with units per state, rate and ETA (util-linux script gives it a pty)',
    async () => {
      const env = user('tty');
      const tsx = path.join(import.meta.dirname, '../node_modules/tsx/dist/cli.mjs');
      const cmd = `'${process.execPath}' '${tsx}' client/cli.ts run examples/workloads/hello.json`;
      // Asynchronously: the backend runs in this process and must keep serving while the CLI runs.
      const child = spawn('script', ['-qec', cmd, '/dev/null'], {
        cwd: path.resolve(import.meta.dirname, '..'),
        env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'xterm', ...env },
        // script ends the session at EOF on its stdin: keep it open until the CLI exits.
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
      });
      const status = await new Promise<number | null>((resolve) => child.once('close', resolve));
      const r = { status, stdout };
      saved(env);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/[█░]+ 5\/5 units \| Done 5 \| \d+\.\d units\/s \| ETA 0s/);
    },
  );

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

describe('sortie run --session', { timeout: 300_000 }, () => {
  it("runs a workload without pilots on the kept session's live pilot, in a second unit manager", async () => {
    const env = user('resume');
    expect((await cli(['run', 'examples/workloads/hello.json', '--keep'], env)).code).toBe(0);
    const s = saved(env);
    const file = path.join(scratch, 'more.yaml');
    writeFileSync(file, 'units:\n  - {executable: /bin/echo, arguments: [again], copies: 3}\n');
    const r = await cli(['run', file, '--session', s.uid], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`session ${s.uid} (reconnected)`);
    expect(r.stdout).toContain('1 pilot(s) pilot.0000; submitting 3 unit(s)');
    const units = await unitsOf(s);
    expect(units.map((u) => [u.unitManager.uid, u.state])).toEqual([
      ...Array(5).fill(['umgr.0000', UnitState.DONE]),
      ...Array(3).fill(['umgr.0001', UnitState.DONE]),
    ]);
    expect(units.filter((u) => u.stdout === 'again\n')).toHaveLength(3);
  });
});

describe('sortie ls, show, logs, cancel on a finished run', { timeout: 300_000 }, () => {
  it('lists, shows and prints the logs of what `run --keep` ran, then cancels the session', async () => {
    const env = user('listing');
    const r = await cli(['run', 'examples/workloads/hello.json', '--keep'], env);
    expect(r.code).toBe(0);
    const s = saved(env);

    const sessions = await cli(['ls', 'sessions', '--json'], env);
    expect(sessions.code).toBe(0);
    expect(JSON.parse(sessions.stdout)).toEqual([
      { uid: s.uid, name: 'hello', created: expect.any(String), state: 'open', api: backend.apiUrl },
    ]);
    const pilots = await cli(['ls', 'pilots', '--json'], env);
    expect(JSON.parse(pilots.stdout).map((p: { uid: string; state: string }) => [p.uid, p.state])).toEqual([
      ['pilot.0000', 'Active'],
    ]);
    const done = await cli(['ls', 'units', '--state', 'DONE', '--json'], env);
    expect(JSON.parse(done.stdout).map((u: { uid: string }) => u.uid)).toEqual([
      'unit.000000',
      'unit.000001',
      'unit.000002',
      'unit.000003',
      'unit.000004',
    ]);
    const failed = await cli(['ls', 'units', '--state', 'Failed'], env);
    expect(failed.stdout).not.toContain('unit.0000');
    const text = await cli(['ls', 'units'], env);
    expect(text.stdout).toMatch(/│ unit\.000004 │ umgr\.0000 │ Done +│ pilot\.0000 │ 0 +│ \/bin\/date/);
    const bogus = await cli(['ls', 'units', '--state', 'bogus'], env);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toContain('--state: must be one of New, ');
    expect(bogus.stderr).toContain('got "bogus"');

    const unit = await cli(['show', 'unit.000000'], env);
    expect(unit.code).toBe(0);
    expect(unit.stdout).toMatch(/^uid: unit\.000000$/m);
    expect(unit.stdout).toMatch(/^ {2}executable: \/bin\/echo$/m);
    expect(unit.stdout).toMatch(/^ {2}- state: Executing\n {4}time: \S+Z$/m);
    expect(unit.stdout).toMatch(/^ {2}- state: Done\n {4}time: \S+Z$/m);
    expect(unit.stdout).toMatch(/^sandbox: \S+unit\.000000$/m);
    const whole = await cli(['show', s.uid, '--json'], env);
    expect(JSON.parse(whole.stdout)).toMatchObject({
      uid: s.uid,
      pilots: [{ uid: 'pilot.0000', state: 'Active' }],
      units: { Done: 5 },
    });
    const missing = await cli(['show', 'pilot.9999'], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`sortie show: pilot.9999: no such pilot in session ${s.uid}\n`);

    const out = await cli(['logs', 'unit.000000'], env);
    expect(out.stdout).toBe('--- stdout ---\nhello world\n--- stderr ---\n--- log ---\n');
    const plog = await cli(['logs', 'pilot.0000'], env);
    expect(plog.stdout).toMatch(/^agent active on .+ 2 cores$/m);

    const cancel = await cli(['cancel', s.uid], env);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toBe(`canceled ${s.uid}\n`);
    const after = await cli(['ls', 'sessions', '--json'], env);
    expect(JSON.parse(after.stdout)[0].state).toBe('closed');
    const ended = await cli(['ls', 'pilots', '--state', 'canceled', '--json'], env);
    expect(JSON.parse(ended.stdout).map((p: { uid: string }) => p.uid)).toEqual(['pilot.0000']);
  });
});

describe('sortie watch, logs --follow and cancel while units run', { timeout: 300_000 }, () => {
  it('watch and logs --follow follow units that `cancel` ends; run, watch exit 1', async () => {
    const env = user('live');
    const file = path.join(scratch, 'long.yaml');
    writeFileSync(
      file,
      'pilots:\n  - {resource: local.localhost, runtime: 10, cores: 2}\nunits:\n  - {executable: /bin/sleep, arguments: ["300"], copies: 2}\n',
    );
    const run = startCli(['run', file], env);
    const s = await until(
      'run saved its session',
      () => (existsSync(path.join(env.SORTIE_DIR as string, 'session.json')) ? saved(env) : undefined),
      60_000,
    );
    await until(
      'both units executing',
      async () => ((await unitsOf(s)).every((u) => u.state === UnitState.EXECUTING) ? true : undefined),
      60_000,
      200,
    );
    const watch = startCli(['watch'], env);
    const follow = startCli(['logs', 'unit.000000', '--follow'], env);
    await until(
      'watch shows both executing',
      () => (/0\/2 units \| Executing 2 \|/.test(watch.output()) ? true : undefined),
      60_000,
    );
    await until(
      'logs --follow shows Executing',
      () => (/ unit\.000000 Executing\n/.test(follow.output()) ? true : undefined),
      60_000,
    );

    const cancel = await cli(['cancel', 'unit.000000', 'unit.000001'], env);
    expect(cancel.stderr).toBe('');
    expect(cancel.stdout).toBe('canceled unit.000000\ncanceled unit.000001\n');
    expect(cancel.code).toBe(0);

    const [ran, watched, followed] = await Promise.all([run.done, watch.done, follow.done]);
    expect(ran.code).toBe(1);
    expect(ran.stdout).toMatch(/│ Canceled +│ 2 +│ 100\.0 │/);
    expect(watched.code).toBe(1);
    expect(watched.stdout).toMatch(/2\/2 units \| Canceled 2 \|/);
    expect(followed.code).toBe(0);
    expect(followed.stdout).toMatch(/ unit\.000000 Executing\n\S+ unit\.000000 Canceled\n/);
    expect((await unitsOf(s)).map((u) => u.state)).toEqual([UnitState.CANCELED, UnitState.CANCELED]);
  });
});

describe('sortie report on the 200-unit example', { timeout: 600_000 }, () => {
  it('runs examples/workloads/sweep-200.yaml, then writes the timeline and utilization plots (SVG, PNG) and the figures', async () => {
    const env = user('report');
    const r = await cli(['run', 'examples/workloads/sweep-200.yaml'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/200\/200 units \| Done 200 \|/);
    const s = saved(env);
    const out = path.join(scratch, 'report-out');
    const rep = await cli(['report', s.uid, '--out', out], env);
    expect(rep.stderr).toBe('');
    expect(rep.code).toBe(0);
    expect(rep.stdout).toMatch(/│ units\/s +│ \d+\.\d\d +│/);
    expect(rep.stdout).toMatch(/│ utilization +│ \d+\.\d % \(/);
    expect(rep.stdout).toMatch(/│ control-plane cost +│ \$0\.\d+ \(\$\d+\.\d\d per million units; mostly /);
    expect(rep.stdout).toMatch(/│ records prove at least +│ \$0\.\d+: \d+ DynamoDB writes/);
    expect(rep.stdout).toContain(
      `wrote timeline.svg, timeline.png, utilization.svg, utilization.png, report.json to ${out}`,
    );

    const timelineSvg = readFileSync(path.join(out, 'timeline.svg'), 'utf8');
    expect(timelineSvg.match(/<title>unit\.\d{6} Done<\/title>/g)).toHaveLength(200);
    expect(timelineSvg).toContain('seconds since the first unit started');
    expect(timelineSvg).toContain('node / core');
    const util = readFileSync(path.join(out, 'utilization.svg'), 'utf8');
    expect(util).toContain('busy cores');
    expect(util).toContain('pilot cores');
    for (const png of ['timeline.png', 'utilization.png'])
      expect(readFileSync(path.join(out, png)).subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');

    const doc = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(doc.figures.units).toBe(200);
    expect(doc.figures.byState).toEqual({ Done: 200 });
    expect(doc.figures.unitsPerSecond).toBeGreaterThan(0);
    // Never more busy cores than the pilot has: the placement is one the agent could have made.
    expect(doc.figures.utilizationPercent).toBeGreaterThan(0);
    expect(doc.figures.utilizationPercent).toBeLessThanOrEqual(100);
    expect(doc.recordsLowerBound.proven.dynamoWrites).toBeGreaterThanOrEqual(200 * 3);
    // The counted requests cover at least what the records prove, and the API requests the CLI made.
    expect(doc.controlPlaneCost.counted.dynamoWru).toBeGreaterThanOrEqual(
      doc.recordsLowerBound.proven.dynamoWru,
    );
    expect(doc.controlPlaneCost.counted.httpRequests).toBeGreaterThan(0);
    expect(doc.controlPlaneCost.usd).toBeGreaterThan(doc.recordsLowerBound.usd);
  });
});
