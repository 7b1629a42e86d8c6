import { describe, expect, it } from 'vitest';
import {
  discoverAllocation,
  expandSlurmCpusPerNode,
  expandSlurmNodelist,
  fitPilot,
  parseLsfHosts,
} from '../agent/allocation.ts';

const host = { name: 'laptop', cores: 8 };
const files = (m: Record<string, string>) => (f: string) => {
  const t = m[f];
  if (t === undefined) throw new Error(`no file ${f}`);
  return t;
};

describe('SLURM node lists', () => {
  it.each([
    ['n1', ['n1']],
    ['n[1-3,5],gpu[01-02]', ['n1', 'n2', 'n3', 'n5', 'gpu01', 'gpu02']],
    ['nid[001998-002001]', ['nid001998', 'nid001999', 'nid002000', 'nid002001']],
    ['c401-[001-002],c402-001', ['c401-001', 'c401-002', 'c402-001']],
    ['r[1-2]n[01-02]', ['r1n01', 'r1n02', 'r2n01', 'r2n02']],
    ['a,b[7],c[08-9]', ['a', 'b7', 'c08', 'c09']],
  ])('%s', (list, nodes) => {
    expect(expandSlurmNodelist(list)).toEqual(nodes);
  });

  it('refuses a broken list, naming it', () => {
    expect(() => expandSlurmNodelist('n[1-')).toThrow(/unclosed '\['/);
    expect(() => expandSlurmNodelist('n[3-1]')).toThrow(/range '3-1'/);
  });

  it('expands SLURM_JOB_CPUS_PER_NODE', () => {
    expect(expandSlurmCpusPerNode('4(x2),2')).toEqual([4, 4, 2]);
    expect(expandSlurmCpusPerNode('128')).toEqual([128]);
    expect(() => expandSlurmCpusPerNode('4(2)')).toThrow(/SLURM_JOB_CPUS_PER_NODE/);
  });
});

describe('discoverAllocation on recorded environments', () => {
  it('SLURM (Perlmutter GPU, 2 nodes)', () => {
    // Recorded from `env | grep SLURM_` in a 2-node job (trimmed).
    const env = {
      SLURM_JOB_ID: '123456',
      SLURM_JOB_NODELIST: 'nid[001004,001008]',
      SLURM_JOB_CPUS_PER_NODE: '128(x2)',
      SLURM_CPUS_ON_NODE: '128',
      SLURM_GPUS_ON_NODE: '4',
      SLURM_NNODES: '2',
    };
    expect(discoverAllocation(env, host)).toEqual({
      lrms: 'SLURM',
      nodes: [
        { name: 'nid001004', cores: 128, gpus: 4 },
        { name: 'nid001008', cores: 128, gpus: 4 },
      ],
    });
  });

  it('SLURM with uneven nodes, GPUs from the resource config', () => {
    const env = { SLURM_NODELIST: 'c[1-3]', SLURM_JOB_CPUS_PER_NODE: '4(x2),2', SLURM_CPUS_ON_NODE: '4' };
    expect(discoverAllocation(env, host, 2).nodes).toEqual([
      { name: 'c1', cores: 4, gpus: 2 },
      { name: 'c2', cores: 4, gpus: 2 },
      { name: 'c3', cores: 2, gpus: 2 },
    ]);
  });

  it('PBS (node file lists a host per core)', () => {
    const env = { PBS_NODEFILE: '/var/spool/pbs/aux/4711.desched1', PBS_JOBID: '4711.desched1' };
    const text = 'dec0001\ndec0001\ndec0001\ndec0002\ndec0002\ndec0002\n';
    expect(discoverAllocation(env, host, 0, files({ [env.PBS_NODEFILE]: text }))).toEqual({
      lrms: 'PBS',
      nodes: [
        { name: 'dec0001', cores: 3, gpus: 0 },
        { name: 'dec0002', cores: 3, gpus: 0 },
      ],
    });
  });

  it('LSF (Lassen: the launch node first, then compute nodes)', () => {
    const env = { LSB_MCPU_HOSTS: 'lassen710 1 lassen12 40 lassen13 40', LSB_JOBID: '99' };
    expect(discoverAllocation(env, host, 4)).toEqual({
      lrms: 'LSF',
      nodes: [
        { name: 'lassen12', cores: 40, gpus: 4 },
        { name: 'lassen13', cores: 40, gpus: 4 },
      ],
    });
    const hostfile = 'batch1\nh1\nh1\nh2\nh2\n';
    expect(parseLsfHosts(undefined, hostfile)).toEqual([
      { name: 'h1', cores: 2, gpus: 0 },
      { name: 'h2', cores: 2, gpus: 0 },
    ]);
    expect(
      discoverAllocation({ LSB_DJOB_HOSTFILE: '/tmp/hf' }, host, 0, files({ '/tmp/hf': 'only\nonly\n' }))
        .nodes,
    ).toEqual([{ name: 'only', cores: 2, gpus: 0 }]);
  });

  it('SGE (PE_HOSTFILE: host slots queue processors)', () => {
    const env = { PE_HOSTFILE: '/opt/sge/default/spool/n1/active_jobs/77.1/pe_hostfile' };
    const text = 'n1.cluster 16 all.q@n1.cluster UNDEFINED\nn2.cluster 8 all.q@n2.cluster UNDEFINED\n';
    expect(discoverAllocation(env, host, 0, files({ [env.PE_HOSTFILE]: text }))).toEqual({
      lrms: 'SGE',
      nodes: [
        { name: 'n1.cluster', cores: 16, gpus: 0 },
        { name: 'n2.cluster', cores: 8, gpus: 0 },
      ],
    });
  });

  it('SGE without a parallel environment (no PE_HOSTFILE): NSLOTS on this host', () => {
    const env = { JOB_ID: '12', NSLOTS: '1', SGE_ROOT: '/var/lib/gridengine' };
    expect(discoverAllocation(env, host, 1)).toEqual({
      lrms: 'SGE',
      nodes: [{ name: 'laptop', cores: 1, gpus: 1 }],
    });
    // JOB_ID and NSLOTS alone are not Grid Engine's.
    expect(discoverAllocation({ JOB_ID: '12', NSLOTS: '1' }, host).lrms).toBe('FORK');
  });

  it('fork: this host', () => {
    expect(discoverAllocation({ HOME: '/home/me' }, host, 2)).toEqual({
      lrms: 'FORK',
      nodes: [{ name: 'laptop', cores: 8, gpus: 2 }],
    });
  });

  it('a batch system listing no nodes is an error', () => {
    expect(() => discoverAllocation({ PE_HOSTFILE: '/x' }, host, 0, files({ '/x': '' }))).toThrow(/no nodes/);
  });
});

describe('fitPilot', () => {
  const alloc = {
    lrms: 'SLURM' as const,
    nodes: [
      { name: 'a', cores: 4, gpus: 2 },
      { name: 'b', cores: 4, gpus: 2 },
      { name: 'c', cores: 4, gpus: 2 },
    ],
  };

  it('takes nodes in order until the pilot is covered', () => {
    expect(fitPilot(alloc, { cores: 6, gpus: 0 }, false)).toEqual({
      nodes: [
        { name: 'a', cores: 4, gpus: 0 },
        { name: 'b', cores: 2, gpus: 0 },
      ],
    });
    expect(fitPilot(alloc, { cores: 12, gpus: 6 }, false)).toEqual({ nodes: alloc.nodes });
  });

  it('refuses a pilot bigger than its allocation, naming both (RP error_handling.py)', () => {
    const fork = { lrms: 'FORK' as const, nodes: [{ name: 'h', cores: 2, gpus: 0 }] };
    const r = fitPilot(fork, { cores: 1_000_000, gpus: 0 }, false, 'local.localhost');
    expect(r).toEqual({
      error:
        "pilot asks for 1000000 cores and 0 GPUs, but its allocation (FORK) has 2 cores and 0 GPUs: 1 node with 2 cores and 0 GPUs; resource 'local.localhost' does not allow oversubscription",
    });
    expect(fitPilot(alloc, { cores: 1, gpus: 7 }, false)).toHaveProperty('error');
  });

  it('oversubscribes when the resource allows it', () => {
    const fork = { lrms: 'FORK' as const, nodes: [{ name: 'h', cores: 2, gpus: 0 }] };
    expect(fitPilot(fork, { cores: 8, gpus: 2 }, true)).toEqual({
      nodes: [{ name: 'h', cores: 8, gpus: 2 }],
    });
    expect(fitPilot(alloc, { cores: 15, gpus: 0 }, true)).toEqual({
      nodes: [
        { name: 'a', cores: 5, gpus: 0 },
        { name: 'b', cores: 5, gpus: 0 },
        { name: 'c', cores: 5, gpus: 0 },
      ],
    });
  });
});
