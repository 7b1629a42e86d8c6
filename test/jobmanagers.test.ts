import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobManagerFor } from '../functions/pilot/launcher/jobmanagers/index.ts';
import type { BatchJobSpec } from '../functions/pilot/launcher/jobmanagers/types.ts';
import { hms, shq } from '../functions/pilot/launcher/jobmanagers/types.ts';
import type { ExecResult } from '../functions/pilot/launcher/ssh.ts';

const goldenDir = path.join(import.meta.dirname, 'golden');
// UPDATE_GOLDEN=1 rewrites the files; review the diff before committing.
const update = process.env.UPDATE_GOLDEN === '1';

const base: BatchJobSpec = {
  jobName: 'sortie-pilot.0000',
  sandbox: '/scratch/u/sortie.sandbox/session.0000/pilot.0000',
  runtimeMinutes: 90,
  cores: 64,
  gpus: 0,
  nodes: 2,
  coresPerNode: 32,
  gpusPerNode: 0,
  queue: 'normal',
  project: 'ABC123',
  queueAs: 'partition',
  wholeNodes: false,
  batchOptions: [],
  preBootstrap: ['module load nodejs/20'],
  node: 'node',
};

const goldens: Array<
  [string, 'slurm' | 'pbspro' | 'torque' | 'lsf' | 'sge' | 'fork', Partial<BatchJobSpec>]
> = [
  ['slurm', 'slurm', { gpus: 4, memoryMb: 8192, batchOptions: ['--constraint=cpu'] }],
  ['slurm-qos-whole', 'slurm', { queueAs: 'qos', queue: 'regular', wholeNodes: true, coresPerNode: 128 }],
  [
    'pbspro',
    'pbspro',
    { gpus: 8, memoryMb: 4096, wholeNodes: true, batchOptions: ['-l job_priority=regular'] },
  ],
  ['torque', 'torque', { memoryMb: 2048 }],
  ['lsf', 'lsf', { gpus: 2, memoryMb: 1000 }],
  ['lsf-csm', 'lsf', { wholeNodes: true, queue: 'pbatch' }],
  ['sge', 'sge', { parallelEnvironment: 'omp', memoryMb: 6400 }],
  ['fork', 'fork', { runtimeMinutes: 10, node: '$HOME/node/bin/node' }],
];

describe('job scripts match the golden files', () => {
  it.each(goldens)('%s', (file, jm, overrides) => {
    const text = jobManagerFor(jm).script({ ...base, ...overrides });
    const golden = path.join(goldenDir, `${file}.sh`);
    if (update) writeFileSync(golden, text);
    expect(existsSync(golden), `${golden} missing: run with UPDATE_GOLDEN=1`).toBe(true);
    expect(text).toBe(readFileSync(golden, 'utf8'));
  });

  it('every script names the job, the sandbox outputs and runs the agent last', () => {
    for (const [, jm, o] of goldens) {
      const text = jobManagerFor(jm).script({ ...base, ...o });
      expect(text.startsWith('#!/bin/bash')).toBe(true);
      expect(text).toContain(base.sandbox);
      expect(text).toContain('module load nodejs/20');
      expect(text).toMatch(/agent\.cjs agent\.json\n/);
      if (jm !== 'fork') {
        expect(text).toContain('sortie-pilot.0000');
        expect(text).toContain(`${base.sandbox}/agent.out`);
        expect(text).toContain(`${base.sandbox}/agent.err`);
      }
    }
  });
});

describe('helpers', () => {
  it('walltime and quoting', () => {
    expect(hms(90)).toBe('01:30:00');
    expect(hms(2880)).toBe('48:00:00');
    expect(hms(5)).toBe('00:05:00');
    expect(shq("it's")).toBe(`'it'\\''s'`);
  });
});

const res = (stdout: string, code = 0, stderr = ''): ExecResult => ({ code, stdout, stderr });

describe('submit parsers', () => {
  it.each([
    ['slurm', '4242\n', '4242'],
    ['slurm', '4242;perlmutter\n', '4242'],
    ['slurm', 'sbatch: error: Batch job submission failed: Invalid account\n', undefined],
    ['pbspro', '3141592.desched1\n', '3141592.desched1'],
    ['torque', '55.head.cluster.example.org\n', '55.head.cluster.example.org'],
    ['lsf', 'Job <12345> is submitted to queue <pbatch>.\n', '12345'],
    ['lsf', 'Project not specified. Job not submitted.\n', undefined],
    ['sge', '4711\n', '4711'],
    ['fork', '12345\n', '12345'],
  ] as const)('%s: %j', (jm, stdout, id) => {
    expect(jobManagerFor(jm).parseSubmit(stdout)).toBe(id);
  });
});

describe('SLURM states', () => {
  const p = (r: ExecResult) => jobManagerFor('slurm').parseStatus(r, '42');
  it('maps native states', () => {
    expect(p(res('PENDING|Resources\n'))).toEqual({ state: 'queued', detail: 'PENDING (Resources)' });
    expect(p(res('PENDING|BeginTime\n'))).toEqual({ state: 'queued', detail: 'PENDING (BeginTime)' });
    expect(p(res('RUNNING|None\n'))).toEqual({ state: 'running', detail: 'RUNNING' });
    expect(p(res('COMPLETING|None\n')).state).toBe('running');
    expect(p(res('COMPLETED|None\n'))).toEqual({ state: 'finished', detail: 'COMPLETED' });
    expect(p(res('TIMEOUT|None\n')).state).toBe('finished');
    expect(p(res('CANCELLED|None\n')).state).toBe('finished');
    expect(p(res('OUT_OF_MEMORY|None\n')).state).toBe('finished');
  });
  it('an unknown or purged id is finished, in SLURM’s words', () => {
    expect(p(res('', 1, 'slurm_load_jobs error: Invalid job id specified\n'))).toEqual({
      state: 'finished',
      detail: 'slurm_load_jobs error: Invalid job id specified',
    });
    expect(p(res(''))).toEqual({ state: 'finished', detail: 'job 42 not in squeue' });
  });
  it('several jobs in one squeue: those listed are known, the others are left to be asked alone', () => {
    const slurm = jobManagerFor('slurm');
    expect(slurm.statusManyCommand?.(['41', '42'])).toBe(
      "squeue -h -t all -j '41,42' -o '%i|%T|%r' 2>/dev/null || true",
    );
    const found = slurm.parseStatusMany?.(res('41|PENDING|JobHeldUser\n42|RUNNING|None\n'));
    expect(found).toEqual(
      new Map([
        ['41', { state: 'queued', detail: 'PENDING (JobHeldUser)' }],
        ['42', { state: 'running', detail: 'RUNNING' }],
      ]),
    );
    expect(slurm.parseStatusMany?.(res('')).size).toBe(0);
  });
});

describe('PBS states', () => {
  const pro = (r: ExecResult) => jobManagerFor('pbspro').parseStatus(r, '7.desched1');
  const tq = (r: ExecResult) => jobManagerFor('torque').parseStatus(r, '7.head');
  const qstat = (state: string, extra = '') =>
    `Job Id: 7.desched1\n    Job_Name = sortie-pilot.0000\n    Job_Owner = u@derecho1\n    job_state = ${state}\n    queue = cpu\n${extra}`;
  it('maps PBS Pro states, with exit status and comment', () => {
    expect(
      pro(res(qstat('Q', '    comment = Not Running: Insufficient amount of resource: ncpus \n'))),
    ).toEqual({
      state: 'queued',
      detail: 'Q (queued); Not Running: Insufficient amount of resource: ncpus',
    });
    expect(pro(res(qstat('H'))).state).toBe('queued');
    expect(pro(res(qstat('R'))).state).toBe('running');
    expect(pro(res(qstat('E'))).state).toBe('running');
    expect(pro(res(qstat('F', '    Exit_status = 271\n')))).toEqual({
      state: 'finished',
      detail: 'F (finished); exit 271',
    });
  });
  it('maps Torque states', () => {
    expect(tq(res(qstat('C', '    exit_status = 0\n')))).toEqual({
      state: 'finished',
      detail: 'C (completed); exit 0',
    });
    expect(tq(res(qstat('W'))).state).toBe('queued');
  });
  it('an unknown id is finished', () => {
    expect(pro(res('', 153, 'qstat: Unknown Job Id 7.desched1\n'))).toEqual({
      state: 'finished',
      detail: 'qstat: Unknown Job Id 7.desched1',
    });
    expect(tq(res('', 153, 'qstat: Unknown Job Id Error 7.head\n')).state).toBe('finished');
  });
});

describe('LSF states', () => {
  const p = (r: ExecResult) => jobManagerFor('lsf').parseStatus(r, '12345');
  it('maps bjobs -o output', () => {
    expect(p(res('PEND|-|Job dependency condition not satisfied;\n'))).toEqual({
      state: 'queued',
      detail: 'PEND; Job dependency condition not satisfied;',
    });
    expect(p(res('RUN|-|-\n'))).toEqual({ state: 'running', detail: 'RUN' });
    expect(p(res('USUSP|-|-\n')).state).toBe('running');
    expect(p(res('DONE|-|-\n')).state).toBe('finished');
    expect(p(res('EXIT|130|-\n'))).toEqual({ state: 'finished', detail: 'EXIT; exit 130' });
  });
  it('an unknown id is finished', () => {
    expect(p(res('', 255, 'Job <12345> is not found\n'))).toEqual({
      state: 'finished',
      detail: 'Job <12345> is not found',
    });
  });
});

describe('SGE states', () => {
  const p = (r: ExecResult) => jobManagerFor('sge').parseStatus(r, '4711');
  const table = (row: string) =>
    'job-ID  prior   name       user         state submit/start at     queue                          slots ja-task-ID \n' +
    '-----------------------------------------------------------------------------------------------------------------\n' +
    `${row}\n` +
    '   4712 0.55500 other      u            qw    11/25/2025 14:00:01                                    1        \n';
  it('maps the job’s qstat row', () => {
    expect(
      p(
        res(
          table(
            '   4711 0.55500 sortie-pil u            qw    11/25/2025 14:00:01                                    4',
          ),
        ),
      ),
    ).toEqual({ state: 'queued', detail: 'qw (queue -)' });
    expect(
      p(
        res(
          table(
            '   4711 0.55500 sortie-pil u            r     11/25/2025 14:00:05 all.q@vm                           4',
          ),
        ),
      ),
    ).toEqual({ state: 'running', detail: 'r (queue all.q@vm)' });
    expect(p(res(table('   4711 0.55500 sortie-pil u            hqw   11/25/2025 14:00:01  4'))).state).toBe(
      'queued',
    );
    expect(p(res(table('   4711 0.55500 sortie-pil u            Eqw   11/25/2025 14:00:01  4'))).state).toBe(
      'finished',
    );
  });
  it('a job in error state is finished, with the reason qstat -j gives (recorded on SGE 8.1.9)', () => {
    const out =
      table(
        '   4711 0.50000 sortie-pil u            Eqw   12/04/2026 17:55:00                                    2',
      ) +
      'error reason          1:      12/04/2026 17:55:02 [1001:27239]: error: can\'t open output file "/nonexistent/dir/out": No such file or directory\n';
    expect(p(res(out))).toEqual({
      state: 'finished',
      detail:
        'Eqw (queue -); error: can\'t open output file "/nonexistent/dir/out": No such file or directory',
    });
  });
  it('a restarted job waiting again is queued; suspended jobs still hold their slots', () => {
    expect(p(res(table('   4711 0.55500 sortie-pil u            Rq    11/25/2025 14:00:01  4'))).state).toBe(
      'queued',
    );
    expect(
      p(res(table('   4711 0.55500 sortie-pil u            Rr    11/25/2025 14:00:01 all.q@vm 4'))).state,
    ).toBe('running');
    expect(
      p(res(table('   4711 0.55500 sortie-pil u            s     11/25/2025 14:00:01 all.q@vm 4'))).state,
    ).toBe('running');
  });
  it('the status command survives a csh login shell: one line, no history character', () => {
    const cmd = jobManagerFor('sge').statusCommand('4711', '/s');
    expect(cmd).not.toContain('\n');
    expect(cmd).not.toContain('!');
  });
  it('a job missing from qstat is finished', () => {
    expect(p(res(table('')))).toEqual({ state: 'finished', detail: 'job 4711 no longer in qstat' });
  });
});

describe('fork states', () => {
  const p = (r: ExecResult) => jobManagerFor('fork').parseStatus(r, '999');
  it('running while the PID runs our agent.sh, finished otherwise', () => {
    expect(p(res('stat=Ss\nexit=\n'))).toEqual({ state: 'running', detail: 'pid 999 (Ss)' });
    expect(p(res('stat=Z\nexit=\n'))).toEqual({ state: 'finished', detail: 'pid 999 not running' });
    expect(p(res('exit=0\n'))).toEqual({ state: 'finished', detail: 'pid 999 exited 0' });
    expect(p(res('exit=124\n'))).toEqual({ state: 'finished', detail: 'pid 999 exited 124' });
  });
});
