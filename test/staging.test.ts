/**
 * Data staging on the resource, end to end on the embedded backend and local.localhost: real agents
 * copy, link and move real files before and after the launch script (agent/staging.ts). Each test
 * judges the files on disk, the unit's state and log, and its history: the staging states appear once,
 * in order, exactly when directives run (RP 0.22), and never for a unit without directives.
 */
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  COPY,
  type ComputePilot,
  type ComputeUnit,
  type ComputeUnitDescriptionInput,
  CREATE_PARENTS,
  LINK,
  MOVE,
  PilotManager,
  Session,
  SKIP_FAILED,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { agentEnds, historyProblems, until } from './e2e.ts';

let backend: Backend;
let session: Session;
let umgr: UnitManager;
let pilot: ComputePilot;
let work: string;

beforeAll(async () => {
  backend = await startBackend();
  work = mkdtempSync(path.join(os.tmpdir(), 'sortie-staging-'));
  session = await Session.create({ endpoint: backend.apiUrl, name: 'staging' });
  const pmgr = await PilotManager.create(session);
  pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
  umgr = await UnitManager.create(session, 'direct_submission');
  await umgr.addPilots(pilot);
});
afterAll(async () => {
  await session?.close({ timeout: 60 });
  await backend?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Submits one unit and waits for its end. */
async function run(d: ComputeUnitDescriptionInput): Promise<ComputeUnit> {
  const unit = await umgr.submitUnits(d);
  await unit.wait({ timeout: 120 });
  return unit;
}

const statesOf = (u: ComputeUnit) => u.stateHistory.map((e) => e.state);
const STAGING: UnitState[] = [
  UnitState.PENDING_INPUT_STAGING,
  UnitState.STAGING_INPUT,
  UnitState.PENDING_OUTPUT_STAGING,
  UnitState.STAGING_OUTPUT,
];

describe.sequential('data staging on local.localhost', () => {
  it('copies, links and moves inputs in and outputs out (lists, CREATE_PARENTS), each staging state once', async () => {
    // Prepare: files on the resource
    const src = path.join(work, 'in');
    rmSync(src, { recursive: true, force: true });
    writeFileSync(`${src}-a.txt`, 'alpha\n');
    writeFileSync(`${src}-b.txt`, 'beta\n');
    writeFileSync(`${src}-moved.txt`, 'gamma\n');
    const outDir = path.join(work, 'results', 'deep');
    // Act
    const unit = await run({
      executable: '/bin/sh',
      arguments: ['-c', 'cat data/a.txt b.txt moved.txt > out.txt; echo side > side.txt; cat out.txt'],
      inputStaging: [
        { source: [`${src}-a.txt`, `${src}-b.txt`], target: ['data/a.txt', 'b.txt'], action: COPY },
        { source: `${src}-moved.txt`, target: 'moved.txt', action: MOVE },
      ],
      outputStaging: [
        { source: 'out.txt', target: path.join(outDir, 'out.txt'), action: COPY },
        { source: 'side.txt', target: path.join(outDir, 'side.txt'), action: MOVE },
        { source: 'out.txt', target: path.join(outDir, 'link.txt'), action: LINK },
      ],
    });
    // Assess
    expect(unit.state, unit.log.join('\n')).toBe(UnitState.DONE);
    expect(unit.stdout).toBe('alpha\nbeta\ngamma\n');
    expect(readFileSync(path.join(outDir, 'out.txt'), 'utf8')).toBe('alpha\nbeta\ngamma\n');
    expect(readFileSync(path.join(outDir, 'side.txt'), 'utf8')).toBe('side\n');
    const sandbox = unit.workingDirectory as string;
    expect(existsSync(path.join(sandbox, 'side.txt'))).toBe(false); // moved, not copied
    expect(existsSync(`${src}-moved.txt`)).toBe(false);
    expect(readFileSync(`${src}-a.txt`, 'utf8')).toBe('alpha\n'); // copied, source kept
    expect(readlinkSync(path.join(outDir, 'link.txt'))).toBe(path.join(sandbox, 'out.txt'));
    expect(lstatSync(path.join(sandbox, 'data', 'a.txt')).isFile()).toBe(true);
    expect(statesOf(unit)).toEqual([
      UnitState.NEW,
      UnitState.PENDING_INPUT_STAGING,
      UnitState.STAGING_INPUT,
      UnitState.PENDING_EXECUTION,
      UnitState.SCHEDULING,
      UnitState.EXECUTING,
      UnitState.PENDING_OUTPUT_STAGING,
      UnitState.STAGING_OUTPUT,
      UnitState.DONE,
    ]);
    expect(historyProblems(unit)).toEqual([]);
  });

  it('shows no staging state for a unit without directives', async () => {
    const unit = await run({ executable: '/bin/true' });
    expect(unit.state).toBe(UnitState.DONE);
    expect(statesOf(unit).filter((s) => STAGING.includes(s))).toEqual([]);
    expect(statesOf(unit)).toEqual([
      UnitState.NEW,
      UnitState.PENDING_EXECUTION,
      UnitState.SCHEDULING,
      UnitState.EXECUTING,
      UnitState.DONE,
    ]);
  });

  it('fails a unit whose input is missing, naming the directive and the OS error, without running it', async () => {
    const marker = path.join(work, 'ran-missing');
    const missing = path.join(work, 'no-such-input.dat');
    const unit = await run({
      executable: '/bin/touch',
      arguments: [marker],
      inputStaging: [{ source: missing, action: LINK }],
    });
    expect(unit.state).toBe(UnitState.FAILED);
    const log = unit.log.join('\n');
    expect(log).toContain(`input staging Link ${missing} → `);
    expect(log).toContain('ENOENT');
    expect(existsSync(marker)).toBe(false);
    expect(statesOf(unit)).toEqual([
      UnitState.NEW,
      UnitState.PENDING_INPUT_STAGING,
      UnitState.STAGING_INPUT,
      UnitState.FAILED,
    ]);
  });

  it('without CREATE_PARENTS a target in a missing folder fails the unit; with it the folder is made', async () => {
    writeFileSync(path.join(work, 'p.txt'), 'p\n');
    const without = await run({
      executable: '/bin/true',
      inputStaging: [{ source: path.join(work, 'p.txt'), target: 'x/y/p.txt', action: COPY, flags: [] }],
    });
    expect(without.state).toBe(UnitState.FAILED);
    expect(without.log.join('\n')).toMatch(/input staging Copy .*p\.txt → .*x\/y\/p\.txt failed: ENOENT/);
    const withParents = await run({
      executable: '/bin/cat',
      arguments: ['x/y/p.txt'],
      inputStaging: [
        { source: path.join(work, 'p.txt'), target: 'x/y/p.txt', action: COPY, flags: [CREATE_PARENTS] },
      ],
    });
    expect(withParents.state).toBe(UnitState.DONE);
    expect(withParents.stdout).toBe('p\n');
  });

  it("stages a failed unit's output only for directives without SKIP_FAILED", async () => {
    const dir = path.join(work, 'failed-out');
    const unit = await run({
      executable: '/bin/sh',
      arguments: ['-c', 'echo a > a.txt; echo b > b.txt; exit 3'],
      outputStaging: [
        {
          source: 'a.txt',
          target: path.join(dir, 'a.txt'),
          action: COPY,
          flags: [CREATE_PARENTS, SKIP_FAILED],
        },
        { source: 'b.txt', target: path.join(dir, 'b.txt'), action: COPY, flags: [CREATE_PARENTS] },
      ],
    });
    expect(unit.state).toBe(UnitState.FAILED);
    expect(unit.exitCode).toBe(3);
    expect(existsSync(path.join(dir, 'a.txt'))).toBe(false);
    expect(readFileSync(path.join(dir, 'b.txt'), 'utf8')).toBe('b\n');
    expect(statesOf(unit).slice(-3)).toEqual([
      UnitState.PENDING_OUTPUT_STAGING,
      UnitState.STAGING_OUTPUT,
      UnitState.FAILED,
    ]);
    // With every directive skipped for a failed unit, no output staging state at all.
    const skipped = await run({
      executable: '/bin/false',
      outputStaging: [{ source: 'STDOUT', target: path.join(dir, 'never.txt'), action: COPY }],
    });
    expect(skipped.state).toBe(UnitState.FAILED);
    expect(statesOf(skipped).filter((s) => STAGING.includes(s))).toEqual([]);
    expect(existsSync(path.join(dir, 'never.txt'))).toBe(false);
  });

  it('passes files between units through the staging area (staging:///), and cleanup removes the sandbox', async () => {
    const producer = await run({
      executable: '/bin/sh',
      arguments: ['-c', 'echo 42 > result.txt'],
      outputStaging: [{ source: 'result.txt', target: 'staging:///result.txt', action: COPY }],
      cleanup: true,
    });
    expect(producer.state, producer.log.join('\n')).toBe(UnitState.DONE);
    await pilot.refresh();
    const area = path.join(pilot.sandbox as string, 'staging_area');
    expect(readFileSync(path.join(area, 'result.txt'), 'utf8')).toBe('42\n');
    expect(existsSync(producer.workingDirectory as string)).toBe(false);
    const consumer = await run({
      executable: '/bin/cat',
      arguments: ['result.txt'],
      inputStaging: [{ source: 'staging:///result.txt', action: LINK }],
    });
    expect(consumer.state).toBe(UnitState.DONE);
    expect(consumer.stdout).toBe('42\n');
    expect(readlinkSync(path.join(consumer.workingDirectory as string, 'result.txt'))).toBe(
      path.join(area, 'result.txt'),
    );
  });

  it('1,000 units each stage one input in and one output back, all DONE, each output correct', async () => {
    // Prepare: one small input per unit
    const dir = path.join(work, 'many');
    mkdirSync(path.join(dir, 'in'), { recursive: true });
    const n = 1000;
    for (let i = 0; i < n; i++) writeFileSync(path.join(dir, 'in', `${i}.txt`), `${i}\n`);
    // Act: each unit doubles its number into out.txt, staged back under its index
    const units = await umgr.submitUnits(
      Array.from({ length: n }, (_, i) => ({
        executable: '/bin/sh',
        arguments: ['-c', 'echo $(( $(cat in.txt) * 2 )) > out.txt'],
        inputStaging: [{ source: path.join(dir, 'in', `${i}.txt`), target: 'in.txt', action: COPY }],
        outputStaging: [{ source: 'out.txt', target: path.join(dir, 'out', `${i}.txt`), action: COPY }],
      })),
    );
    await umgr.waitUnits({ uids: units.map((u) => u.uid), timeout: 600 });
    // Assess
    expect(
      units.filter((u) => u.state !== UnitState.DONE).map((u) => `${u.uid} ${u.state} ${u.log}`),
    ).toEqual([]);
    const wrong = units.flatMap((_, i) => {
      const got = readFileSync(path.join(dir, 'out', `${i}.txt`), 'utf8');
      return got === `${2 * i}\n` ? [] : [`${i}: ${got}`];
    });
    expect(wrong).toEqual([]);
    expect(units.flatMap(historyProblems)).toEqual([]);
    const staged = units.map((u) =>
      statesOf(u)
        .filter((s) => STAGING.includes(s))
        .join(),
    );
    expect(new Set(staged)).toEqual(new Set([STAGING.join()]));
  }, 600_000);

  it('pilot cleanup empties its sandbox at the end and keeps the logs', async () => {
    // Prepare: a pilot of its own, with cleanup, in a sandbox of this test
    const root = path.join(work, 'pilots');
    const pmgr = await PilotManager.create(session);
    const p = await pmgr.submitPilots({
      resource: 'local.localhost',
      runtime: 10,
      cores: 1,
      sandbox: root,
      cleanup: true,
    });
    const um = await UnitManager.create(session, 'direct_submission');
    await um.addPilots(p);
    const unit = await um.submitUnits({
      executable: '/bin/sh',
      arguments: ['-c', 'echo x > x.txt'],
      outputStaging: [{ source: 'x.txt', target: 'staging:///x.txt', action: COPY }],
    });
    await unit.wait({ timeout: 120 });
    expect(unit.state).toBe(UnitState.DONE);
    const sandbox = (await p.refresh()).sandbox as string;
    expect(readFileSync(path.join(sandbox, 'staging_area', 'x.txt'), 'utf8')).toBe('x\n');
    // Act
    await p.cancel();
    await p.wait({ timeout: 60 });
    // Assess: the agent empties the sandbox on its way out (after the pilot's end is recorded)
    await until(
      'the agent cleans its sandbox',
      () => (existsSync(path.join(sandbox, 'staging_area')) ? undefined : true),
      60_000,
    );
    const left = readdirSync(sandbox).sort();
    expect(left).toContain('agent.out');
    expect(left.filter((n) => !/^agent\.pid$|\.(log|out|err)$/.test(n))).toEqual([]);
    expect(existsSync(path.join(sandbox, unit.uid))).toBe(false);
    expect(await agentEnds(sandbox)).toContain('logs kept');
  });

  it('refuses what is not built: remote schemes at submit, naming the directive', async () => {
    const bad = await umgr
      .submitUnits([
        { executable: '/bin/true', outputStaging: [{ source: 'o', target: 'sftp://h/o', action: COPY }] },
      ])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(String((bad as Error).message)).toContain(
      'outputStaging[0].target: the sftp:// scheme is not supported',
    );
  });
});
