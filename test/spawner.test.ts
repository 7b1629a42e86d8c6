/**
 * The persistent spawner (agent/spawner.ts), compiled for real with this host's C compiler: units start
 * in their own session with the environment, directory, launch script and output files asked for; their
 * exit codes and signals come back; failures name their step; a dead spawner loses its units loudly.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HelperSpawner, type SpawnEvents, type SpawnRequest } from '../agent/spawner.ts';
import { alive, until } from './e2e.ts';

const hasCc = (() => {
  try {
    execFileSync(process.env.CC || 'cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Everything the spawner said about one unit, in order. */
interface Seen {
  events: string[];
  pid?: number;
  end: Promise<string>;
}

function watch(): { ev: SpawnEvents; seen: Seen } {
  let done: (s: string) => void = () => {};
  const seen: Seen = { events: [], end: new Promise((r) => (done = r)) };
  const note = (s: string, final: boolean) => {
    seen.events.push(s);
    if (final) done(s);
  };
  return {
    seen,
    ev: {
      spawned: (pid) => {
        seen.pid = pid;
        note(`spawned`, false);
      },
      failed: (stage, code) => note(`failed ${stage} ${code}`, true),
      exited: (code, signal) => note(`exited ${code} ${signal}`, true),
      lost: (reason) => note(`lost ${reason}`, true),
    },
  };
}

const within = <T>(p: Promise<T>, ms = 20_000) =>
  Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timeout')), ms).unref())]);

describe.skipIf(!hasCc)('persistent spawner', () => {
  let dir: string;
  let spawner: HelperSpawner;
  const logs: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sortie-spawner-'));
    const s = await HelperSpawner.start(dir, (m) => logs.push(m));
    if (!s) throw new Error(`spawner did not start: ${logs.join('; ')}`);
    spawner = s;
  }, 60_000);
  afterAll(() => {
    spawner?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (req: Partial<SpawnRequest> & { cwd: string; file: string }) => {
    const { ev, seen } = watch();
    spawner.spawn({ args: [], env: {}, ...req }, ev);
    return seen;
  };

  it('makes the sandbox, writes the script, sets the environment and output files, reports the exit code', async () => {
    const cwd = path.join(dir, 'unit.000001');
    const seen = run({
      cwd,
      file: '/bin/bash',
      args: ['launch.sh', 'a b'],
      script: { path: path.join(cwd, 'launch.sh'), text: 'echo "$FOO|$1|$(pwd)"; echo oops >&2; exit 7\n' },
      stdout: path.join(cwd, 'OUT'),
      stderr: path.join(cwd, 'ERR'),
      env: { FOO: 'bar baz', RP_UNIT_ID: 'unit.000001' },
    });
    expect(await within(seen.end)).toBe('exited 7 null');
    expect(seen.events).toEqual(['spawned', 'exited 7 null']);
    expect(readFileSync(path.join(cwd, 'OUT'), 'utf8')).toBe(`bar baz|a b|${cwd}\n`);
    expect(readFileSync(path.join(cwd, 'ERR'), 'utf8')).toBe('oops\n');
    expect(statSync(path.join(cwd, 'launch.sh')).mode & 0o777).toBe(0o700);
  });

  /** A unit (sh) that starts a child and writes its pid, once both are up. */
  const withChild = async (name: string): Promise<{ seen: Seen; kid: number }> => {
    const cwd = path.join(dir, name);
    const seen = run({ cwd, file: '/bin/sh', args: ['-c', 'sleep 300 & echo $! > kid; exec sleep 300'] });
    const kidFile = path.join(cwd, 'kid');
    const kid = await until(
      'spawned and its child up',
      () => (seen.pid && existsSync(kidFile) && readFileSync(kidFile, 'utf8').trim()) || undefined,
      20_000,
    );
    return { seen, kid: Number(kid) };
  };

  it('starts each unit in its own session, so a kill of its group reaches its children; reports the signal', async () => {
    const { seen, kid } = await withChild('unit.000002');
    const pid = seen.pid as number;
    // Its own session and group: pgid = sid = pid.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    expect([Number(f[2]), Number(f[3])]).toEqual([pid, pid]);
    process.kill(-pid, 'SIGKILL');
    expect(await within(seen.end)).toBe('exited null SIGKILL');
    await until('the child died with the group', () => (alive(kid) ? undefined : true), 10_000);
  });

  it('names the step that failed: a missing executable (exec), a sandbox that cannot be made', async () => {
    const missing = run({ cwd: path.join(dir, 'unit.000003'), file: '/no/such/program' });
    expect(await within(missing.end)).toBe('failed exec ENOENT');
    writeFileSync(path.join(dir, 'a-file'), '');
    const noDir = run({ cwd: path.join(dir, 'a-file', 'unit.000004'), file: '/bin/true' });
    expect(await within(noDir.end)).toBe('failed sandbox ENOTDIR');
    const noOut = run({
      cwd: path.join(dir, 'unit.000005'),
      file: '/bin/true',
      stdout: path.join(dir, 'no-dir', 'OUT'),
    });
    expect(await within(noOut.end)).toBe('failed output ENOENT');
  });

  it("finds a bare command on the unit's own PATH, as execvp would: a script without #! runs with sh", async () => {
    // Prepare: a bin folder only the unit's PATH names, with a #! script, a script without #! and a
    // file that is not executable.
    const bin = path.join(dir, 'unit-bin');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'hello'), '#!/bin/sh\necho "hello $GREETING"\n', { mode: 0o755 });
    writeFileSync(path.join(bin, 'plain'), 'echo "plain $0"\n', { mode: 0o755 });
    writeFileSync(path.join(bin, 'locked'), '#!/bin/sh\n', { mode: 0o644 });
    const env = { PATH: `${bin}:/usr/bin:/bin`, GREETING: 'from the unit' };
    const out = (name: string) => path.join(dir, name, 'OUT');
    // Act
    const hello = run({ cwd: path.join(dir, 'path.1'), file: 'hello', env, stdout: out('path.1') });
    const plain = run({ cwd: path.join(dir, 'path.2'), file: 'plain', env, stdout: out('path.2') });
    const locked = run({ cwd: path.join(dir, 'path.3'), file: 'locked', env });
    const elsewhere = run({ cwd: path.join(dir, 'path.4'), file: 'hello' });
    // A variable the unit sets replaces the spawner's own (one value, not two).
    const home = run({
      cwd: path.join(dir, 'path.5'),
      file: 'sh',
      args: ['-c', 'env | grep -c "^HOME="; echo "$HOME"'],
      env: { HOME: '/unit/home' },
      stdout: out('path.5'),
    });
    // Assess
    expect(await within(hello.end)).toBe('exited 0 null');
    expect(readFileSync(out('path.1'), 'utf8')).toBe('hello from the unit\n');
    expect(await within(plain.end)).toBe('exited 0 null');
    expect(readFileSync(out('path.2'), 'utf8')).toBe(`plain ${path.join(bin, 'plain')}\n`);
    expect(await within(locked.end)).toBe('failed exec EACCES');
    expect(await within(elsewhere.end)).toBe('failed exec ENOENT');
    expect(await within(home.end)).toBe('exited 0 null');
    expect(readFileSync(out('path.5'), 'utf8')).toBe('1\n/unit/home\n');
  });

  it('runs many units at once, each reported once with its own code', async () => {
    const all = Array.from({ length: 40 }, (_, i) =>
      run({ cwd: path.join(dir, `many.${i}`), file: '/bin/sh', args: ['-c', `exit ${i % 5}`] }),
    );
    const ends = await within(Promise.all(all.map((s) => s.end)));
    expect(ends).toEqual(all.map((_, i) => `exited ${i % 5} null`));
    for (const s of all) expect(s.events).toHaveLength(2);
  });

  it('refuses a NUL byte in a field before anything is sent', () => {
    const { ev } = watch();
    expect(() => spawner.spawn({ cwd: dir, file: '/bin/true', args: ['a\0b'], env: {} }, ev)).toThrow(/NUL/);
  });

  it('kills a unit process group when asked through its pipe (the way to reach a unit on another node)', async () => {
    const { seen, kid } = await withChild('unit.killed');
    spawner.kill(seen.pid as number, 'SIGTERM');
    expect(await within(seen.end)).toBe('exited null SIGTERM');
    await until('the child died with the group', () => (alive(kid) ? undefined : true), 10_000);
  });

  it('started for another node (-k, through a launcher): its units die when the agent connection closes', async () => {
    const logs2: string[] = [];
    // `env` stands in for ssh/srun: the same pipes, the program and -k as the last words.
    const remote = await HelperSpawner.onNode(
      spawner.program,
      'here',
      { file: 'env', args: [spawner.program, '-k'] },
      (m) => logs2.push(m),
    );
    if (!remote) throw new Error(`remote spawner did not start: ${logs2.join('; ')}`);
    expect(remote.node).toBe('here');
    expect(logs2.join('\n')).toMatch(/on here \(via env\)/);
    const { ev, seen } = watch();
    remote.spawn({ cwd: path.join(dir, 'unit.remote'), file: '/bin/sleep', args: ['300'], env: {} }, ev);
    await until('spawned', () => seen.pid, 20_000);
    const pid = seen.pid as number;
    remote.close();
    // The spawner killed its unit on the way out: the process is gone, with nobody else killing it.
    await until('the unit died with the connection', () => (alive(pid) ? undefined : true), 10_000);
  });

  it('a spawner that dies loses its running units (reported, not silent) and refuses new ones', async () => {
    const own = await HelperSpawner.start(mkdtempSync(path.join(dir, 'own-')), () => {});
    if (!own) throw new Error('second spawner did not start');
    const { ev, seen } = watch();
    own.spawn({ cwd: path.join(dir, 'unit.lost'), file: '/bin/sleep', args: ['300'], env: {} }, ev);
    await until('spawned', () => seen.pid, 20_000);
    process.kill(own.pid, 'SIGKILL');
    expect(await within(seen.end)).toMatch(/^lost spawner exited \(SIGKILL\)/);
    expect(own.usable).toBe(false);
    const later = watch();
    own.spawn({ cwd: dir, file: '/bin/true', args: [], env: {} }, later.ev);
    expect(await within(later.seen.end)).toMatch(/^lost /);
    process.kill(-(seen.pid as number), 'SIGKILL');
  });
});
