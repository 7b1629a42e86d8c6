/**
 * Launch methods and the unit launch script: golden command lines for every method (test/golden/launch/,
 * regenerate with UPDATE_GOLDEN=1 after checking the diff), the choice of methods from a resource config,
 * and the script's RP semantics run for real with bash.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  chooseMethods,
  launchScript,
  type Method,
  methodFor,
  remoteKillCommand,
  rpQuote,
  type ScriptInput,
  spawnCommand,
} from '../agent/launch-methods.ts';
import type { Slot } from '../core/slots.ts';

const goldenDir = path.join(import.meta.dirname, 'golden', 'launch');
const update = process.env.UPDATE_GOLDEN === '1';
const scratch = mkdtempSync(path.join(os.tmpdir(), 'sortie-lm-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const oneNode: Slot[] = [{ node: 1, name: 'nid0002', cores: [4, 5, 6, 7], gpus: [1] }];
const twoNodes: Slot[] = [
  { node: 0, name: 'nid0001', cores: [2, 3], gpus: [] },
  { node: 1, name: 'nid0002', cores: [0, 1], gpus: [] },
];
/** Three ranks on the first node, one on the second: srun needs every rank's node spelled out. */
const unevenNodes: Slot[] = [
  { node: 0, name: 'nid0001', cores: [1, 2, 3], gpus: [] },
  { node: 1, name: 'nid0002', cores: [0], gpus: [] },
];

const base: ScriptInput = {
  uid: 'unit.000042',
  sandbox: '/scratch/u/sortie.sandbox/session.0000/pilot.0000/unit.000042',
  stdout: 'STDOUT',
  stderr: 'STDERR',
  rpEnv: { RP_UNIT_ID: 'unit.000042', RP_CORES: '4', CUDA_VISIBLE_DEVICES: '1' },
  env: { OMP_NUM_THREADS: '4', INPUT: '$HOME/in.dat' },
  preExec: ['module load gromacs'],
  executable: 'gmx_mpi',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell variable, on purpose
  arguments: ['mdrun', '-s', '${INPUT}', '-deffnm', 'run $RP_UNIT_ID'],
  postExec: [],
  method: 'FORK',
  mpi: false,
  slots: oneNode,
  flavor: 'openmpi',
  nodeOffsets: [0, 64],
};

const goldens: Array<[string, Partial<ScriptInput>]> = [
  ['fork', { postExec: ['echo done $RP_RETVAL > post.txt'] }],
  ['ssh', {}],
  ['srun', { method: 'SRUN' }],
  ['srun-mpi', { method: 'SRUN', mpi: true, slots: twoNodes }],
  ['srun-mpi-uneven', { method: 'SRUN', mpi: true, slots: unevenNodes, srunMpi: 'pmix' }],
  ['mpirun-openmpi', { method: 'MPIRUN', mpi: true, slots: twoNodes }],
  ['mpiexec-mpich', { method: 'MPIEXEC', mpi: true, slots: twoNodes, flavor: 'mpich' }],
  ['ibrun', { method: 'IBRUN', mpi: true, slots: twoNodes }],
  ['aprun', { method: 'APRUN', mpi: true, slots: twoNodes }],
  [
    'jsrun',
    {
      method: 'JSRUN',
      mpi: true,
      slots: [{ node: 0, name: 'lassen12', cores: [0, 1, 2, 3], gpus: [0, 1, 2, 3] }],
    },
  ],
];

describe('launch scripts match the golden files', () => {
  it.each(goldens)('%s', (name, overrides) => {
    const text = launchScript({ ...base, ...overrides });
    const golden = path.join(goldenDir, `${name}.sh`);
    if (update) {
      mkdirSync(goldenDir, { recursive: true });
      writeFileSync(golden, text);
    }
    expect(existsSync(golden), `${golden} missing: run with UPDATE_GOLDEN=1`).toBe(true);
    expect(text).toBe(readFileSync(golden, 'utf8'));
    // Every script is valid bash.
    const check = spawnSync('bash', ['-n'], { input: text });
    expect(check.status, check.stderr.toString()).toBe(0);
  });

  it('SSH starts the script on the unit node; everything else runs bash on the agent node', () => {
    expect(spawnCommand('SSH', oneNode, base.sandbox, ['-p', '2222'])).toEqual({
      file: 'ssh',
      args: [
        '-o',
        'BatchMode=yes',
        '-p',
        '2222',
        'nid0002',
        'echo $$ && cd /scratch/u/sortie.sandbox/session.0000/pilot.0000/unit.000042 && exec bash launch.sh',
      ],
    });
    // Cancel kills the unit's remote session, whose id the remote shell printed first.
    expect(remoteKillCommand('nid0002', 4242, ['-p', '2222'])).toEqual({
      file: 'ssh',
      args: ['-o', 'BatchMode=yes', '-p', '2222', 'nid0002', 'pkill -KILL -s 4242; true'],
    });
    for (const m of ['FORK', 'SRUN', 'MPIRUN'] as Method[])
      expect(spawnCommand(m, oneNode, base.sandbox)).toEqual({ file: '/bin/bash', args: ['launch.sh'] });
  });
});

describe('choosing launch methods (RP task and MPI launch methods)', () => {
  it('takes the first capable method of the order', () => {
    expect(chooseMethods({ order: ['SRUN', 'FORK'] })).toMatchObject({ task: 'SRUN', mpi: 'SRUN' });
    expect(chooseMethods({ order: ['FORK', 'SSH', 'MPIRUN'] })).toMatchObject({ task: 'SSH', mpi: 'MPIRUN' });
    expect(
      chooseMethods({ order: ['MPIEXEC', 'SSH'], options: { MPIEXEC: { flavor: 'mpich' } } }),
    ).toMatchObject({ task: 'SSH', mpi: 'MPIEXEC', mpiFlavor: 'mpich' });
    const fork = chooseMethods({ order: ['FORK'] });
    expect(fork.task).toBeUndefined();
    expect(fork.mpi).toBeUndefined();
    expect(() => chooseMethods({ order: ['MPIRUN'], options: { MPIRUN: { flavor: 'lam' } } })).toThrow(
      /launchMethods.options.MPIRUN.flavor: must be openmpi or mpich, got "lam"/,
    );
    expect(chooseMethods({ order: ['SRUN'], options: { SRUN: { mpi: 'pmix' } } }).srunMpi).toBe('pmix');
    expect(() => chooseMethods({ order: ['SRUN'], options: { SRUN: { mpi: 'pmix; rm' } } })).toThrow(
      /launchMethods.options.SRUN.mpi: must be an srun --mpi plugin name such as pmix, got "pmix; rm"/,
    );
  });

  it('FORK on the agent node, the task method elsewhere, MPI only with an MPI method', () => {
    const m = chooseMethods({ order: ['SSH', 'FORK'] });
    expect(methodFor(false, [{ ...oneNode[0], node: 0 } as Slot], 0, m)).toEqual({ method: 'FORK' });
    expect(methodFor(false, oneNode, 0, m)).toEqual({ method: 'SSH' });
    expect(methodFor(true, twoNodes, 0, m)).toEqual({
      error:
        'unit is MPI (mpi: true), but the resource has no MPI launch method (launchMethods.order: SSH, FORK); it is not run as a single process',
    });
    expect(methodFor(false, oneNode, 0, chooseMethods())).toHaveProperty('error');
  });
});

describe('the launch script, run for real', () => {
  const run = (over: Partial<ScriptInput>) => {
    const dir = mkdtempSync(path.join(scratch, 'u-'));
    const text = launchScript({
      ...base,
      sandbox: dir,
      slots: [{ node: 0, name: 'h', cores: [0], gpus: [] }],
      preExec: [],
      env: {},
      rpEnv: { RP_UNIT_ID: 'unit.7' },
      ...over,
    });
    writeFileSync(path.join(dir, 'launch.sh'), text);
    const r = spawnSync('/bin/bash', ['launch.sh'], { cwd: dir, env: { PATH: process.env.PATH, HOME: dir } });
    const read = (f: string) =>
      existsSync(path.join(dir, f)) ? readFileSync(path.join(dir, f), 'utf8') : '';
    return { code: r.status, out: read('STDOUT'), err: read('STDERR'), read };
  };

  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell variable, on purpose
  it('expands $VAR and ${VAR} in arguments from the unit environment, keeps spaces and quotes', () => {
    const r = run({
      env: { CU_NO: '7', GREETING: 'hello "world"' },
      executable: '/bin/echo',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell variable, on purpose
      arguments: ['unit $CU_NO', '${CU_NO}x', '$GREETING', 'a  b', 'say "hi"', '$RP_UNIT_ID'],
    });
    expect(r.code).toBe(0);
    expect(r.out).toBe('unit 7 7x hello "world" a  b say "hi" unit.7\n');
  });

  it('pre_exec can source and set the environment, post_exec sees the exit code, the script exits with it', () => {
    const r = run({
      preExec: ['echo "export FROM_PRE=sourced" > env.sh', 'source env.sh'],
      executable: '/bin/sh',
      arguments: ['-c', 'echo $FROM_PRE; exit 3'],
      postExec: ['echo "post $RP_RETVAL" > post.txt'],
    });
    expect(r.code).toBe(3);
    expect(r.out).toBe('sourced\n');
    expect(r.read('post.txt')).toBe('post 3\n');
  });

  it("SRUN hands an MPI unit with unequal shares per node its ranks' nodes in SLURM_HOSTFILE", () => {
    // A stand-in srun (the real one needs a job): prints its arguments and the hostfile it was given.
    const bin = mkdtempSync(path.join(scratch, 'bin-'));
    writeFileSync(path.join(bin, 'srun'), '#!/bin/sh\necho "$@"\ncat "$SLURM_HOSTFILE"\n', { mode: 0o755 });
    const over = {
      method: 'SRUN' as const,
      mpi: true,
      slots: unevenNodes,
      srunMpi: 'pmix',
      executable: 'a.out',
    };
    const dir = mkdtempSync(path.join(scratch, 'u-'));
    writeFileSync(
      path.join(dir, 'launch.sh'),
      launchScript({ ...base, ...over, sandbox: dir, preExec: [], env: {}, arguments: [] }),
    );
    const r = spawnSync('/bin/bash', ['launch.sh'], {
      cwd: dir,
      env: { PATH: `${bin}:${process.env.PATH}` },
    });
    expect(r.status).toBe(0);
    expect(readFileSync(path.join(dir, 'STDOUT'), 'utf8')).toBe(
      '--exclusive --cpu-bind=none --nodes=2 --ntasks=4 --cpus-per-task=1 --mpi=pmix --distribution=arbitrary a.out\n' +
        'nid0001\nnid0001\nnid0001\nnid0002\n',
    );
  });

  it('a missing executable exits 127 with the shell saying so on stderr', () => {
    const r = run({ executable: '/bin/no-such-thing', arguments: [] });
    expect(r.code).toBe(127);
    expect(r.err).toContain('/bin/no-such-thing');
  });

  it('rpQuote only escapes double quotes', () => {
    expect(rpQuote('a "b" $C')).toBe('"a \\"b\\" $C"');
    expect(execFileSync('bash', ['-c', `X=1; echo ${rpQuote('$X "q"')}`]).toString()).toBe('1 "q"\n');
  });
});
