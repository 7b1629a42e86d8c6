/**
 * Discovers the allocation the agent runs in, from the batch system's environment (RP's LRMS step).
 * The agent launches units with FORK on its own node; the node list is reported for the pilot's
 * resourceDetail so that users see what they got.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** Nodes and cores of the allocation, as RP's `resource_detail`. */
export interface Allocation {
  lrms: 'SLURM' | 'PBS' | 'LSF' | 'SGE' | 'FORK';
  nodes: string[];
  coresPerNode: number;
}

function uniqueLines(file: string): string[] {
  return [
    ...new Set(
      readFileSync(file, 'utf8')
        .split('\n')
        .map((l) => l.trim().split(/\s+/)[0] ?? '')
        .filter(Boolean),
    ),
  ];
}

/** Expands a compact SLURM node list such as `node[01-03,07],gpu5`. */
export function expandSlurmNodelist(list: string): string[] {
  const out: string[] = [];
  for (const part of list.match(/[^,[]+(\[[^\]]*\])?/g) ?? []) {
    const m = /^(.*)\[(.*)\]$/.exec(part);
    if (!m) {
      out.push(part);
      continue;
    }
    const [, prefix = '', ranges = ''] = m;
    for (const r of ranges.split(',')) {
      const [a = '', b] = r.split('-');
      if (b === undefined) out.push(prefix + a);
      else for (let i = Number(a); i <= Number(b); i++) out.push(prefix + String(i).padStart(a.length, '0'));
    }
  }
  return out;
}

/** Reads the allocation from SLURM, PBS, LSF or SGE variables, else this host with `cores` cores. */
export function discoverAllocation(env: NodeJS.ProcessEnv, cores: number): Allocation {
  const cpus = Number(env.SLURM_CPUS_ON_NODE ?? env.NCPUS ?? env.NSLOTS ?? 0);
  const perNode = cpus > 0 ? cpus : cores;
  if (env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST) {
    return {
      lrms: 'SLURM',
      nodes: expandSlurmNodelist(env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST ?? ''),
      coresPerNode: perNode,
    };
  }
  if (env.PBS_NODEFILE) return { lrms: 'PBS', nodes: uniqueLines(env.PBS_NODEFILE), coresPerNode: perNode };
  if (env.LSB_DJOB_HOSTFILE) {
    // LSF lists the launch node first; RP drops it too.
    const hosts = uniqueLines(env.LSB_DJOB_HOSTFILE);
    return { lrms: 'LSF', nodes: hosts.length > 1 ? hosts.slice(1) : hosts, coresPerNode: perNode };
  }
  if (env.PE_HOSTFILE) return { lrms: 'SGE', nodes: uniqueLines(env.PE_HOSTFILE), coresPerNode: perNode };
  return { lrms: 'FORK', nodes: [os.hostname()], coresPerNode: cores };
}
