/**
 * Discovers the allocation the agent runs in (RP's LRMS step): the job's nodes with their cores and GPUs,
 * from the batch system's environment (SLURM, PBS/Torque, LSF, SGE) or this host alone (fork). The parsers
 * are pure and take the text of the files; only {@link discoverAllocation} reads files. {@link fitPilot}
 * then cuts the pilot's share (its `cores` and `gpus`) out of the allocation, or says why it cannot.
 */
import { readFileSync } from 'node:fs';
import { describeNodes, type SlotNode } from '../core/slots.ts';

/** Batch systems the agent recognises (`FORK`: no batch system, this host). */
export type Lrms = 'SLURM' | 'PBS' | 'LSF' | 'SGE' | 'FORK';

/** Nodes of the allocation with their cores and GPUs, node 0 being the agent's own (RP's `resource_detail`). */
export interface Allocation {
  lrms: Lrms;
  nodes: SlotNode[];
}

/**
 * Expands a SLURM host list in any compressed form: `n[1-3,5],gpu[01-02]`, `a[1-2]-b[3-4]` (every
 * bracket group multiplies), zero-padded ranges, and plain names.
 */
export function expandSlurmNodelist(list: string): string[] {
  const out: string[] = [];
  for (const expr of splitTopLevel(list.trim())) {
    if (expr) out.push(...expandHost(expr));
  }
  return out;
}

/** Splits on commas outside brackets. */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '[') depth++;
    else if (ch === ']') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim());
}

function expandHost(expr: string): string[] {
  const open = expr.indexOf('[');
  if (open < 0) return [expr];
  const close = expr.indexOf(']', open);
  if (close < 0) throw new Error(`bad SLURM node list: unclosed '[' in '${expr}'`);
  const prefix = expr.slice(0, open);
  const rest = expandHost(expr.slice(close + 1));
  const out: string[] = [];
  for (const range of expr.slice(open + 1, close).split(',')) {
    const [a = '', b] = range.split('-');
    const ids: string[] = [];
    if (b === undefined) ids.push(a);
    else {
      const from = Number(a);
      const to = Number(b);
      if (!Number.isInteger(from) || !Number.isInteger(to) || to < from)
        throw new Error(`bad SLURM node list: range '${range}' in '${expr}'`);
      for (let i = from; i <= to; i++) ids.push(String(i).padStart(a.length, '0'));
    }
    for (const id of ids) for (const r of rest) out.push(prefix + id + r);
  }
  return out;
}

/** Expands `SLURM_JOB_CPUS_PER_NODE`, e.g. `4(x2),2` → [4, 4, 2]. */
export function expandSlurmCpusPerNode(value: string): number[] {
  const out: number[] = [];
  for (const part of value.split(',')) {
    const m = /^\s*(\d+)(?:\(x(\d+)\))?\s*$/.exec(part);
    if (!m) throw new Error(`bad SLURM_JOB_CPUS_PER_NODE '${value}'`);
    for (let i = 0; i < Number(m[2] ?? 1); i++) out.push(Number(m[1]));
  }
  return out;
}

/** Hosts in order of first appearance with how often each appears (PBS node files list a host per slot). */
export function countHosts(lines: readonly string[]): Array<{ name: string; count: number }> {
  const counts = new Map<string, number>();
  for (const l of lines) {
    const h = l.trim().split(/\s+/)[0];
    if (h) counts.set(h, (counts.get(h) ?? 0) + 1);
  }
  return [...counts].map(([name, count]) => ({ name, count }));
}

/** `PBS_NODEFILE` text (one line per core) → nodes with cores. */
export function parsePbsNodefile(text: string, gpusPerNode = 0): SlotNode[] {
  return countHosts(text.split('\n')).map((h) => ({ name: h.name, cores: h.count, gpus: gpusPerNode }));
}

/** `PE_HOSTFILE` text (`host slots queue processors` per line) → nodes with cores. */
export function parseSgeHostfile(text: string, gpusPerNode = 0): SlotNode[] {
  const nodes: SlotNode[] = [];
  for (const line of text.split('\n')) {
    const [name, slots] = line.trim().split(/\s+/);
    if (name && slots) nodes.push({ name, cores: Number(slots), gpus: gpusPerNode });
  }
  return nodes;
}

/**
 * LSF hosts from `LSB_MCPU_HOSTS` (`host n host n …`) or, without it, the `LSB_DJOB_HOSTFILE` text (a host
 * per slot). The first host is the launch (batch) node when there are several; RP drops it too.
 */
export function parseLsfHosts(
  mcpuHosts: string | undefined,
  hostfile: string | undefined,
  gpusPerNode = 0,
): SlotNode[] {
  let hosts: Array<{ name: string; count: number }>;
  if (mcpuHosts?.trim()) {
    const words = mcpuHosts.trim().split(/\s+/);
    hosts = [];
    for (let i = 0; i + 1 < words.length; i += 2)
      hosts.push({ name: words[i] as string, count: Number(words[i + 1]) });
  } else hosts = countHosts((hostfile ?? '').split('\n'));
  if (hosts.length > 1) hosts = hosts.slice(1);
  return hosts.map((h) => ({ name: h.name, cores: h.count, gpus: gpusPerNode }));
}

/** SLURM nodes from the job's variables; GPUs from `SLURM_GPUS_ON_NODE`, else the resource config. */
export function parseSlurm(env: NodeJS.ProcessEnv, gpusPerNode = 0): SlotNode[] {
  const names = expandSlurmNodelist(env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST ?? '');
  const perNode = env.SLURM_JOB_CPUS_PER_NODE ? expandSlurmCpusPerNode(env.SLURM_JOB_CPUS_PER_NODE) : [];
  const onNode = Number(env.SLURM_CPUS_ON_NODE ?? 0);
  const gpus = env.SLURM_GPUS_ON_NODE !== undefined ? Number(env.SLURM_GPUS_ON_NODE) : gpusPerNode;
  return names.map((name, i) => ({ name, cores: perNode[i] ?? (onNode || 1), gpus }));
}

/** Where this agent runs when no batch system is found. */
export interface ThisHost {
  name: string;
  /** Cores of this host (os.availableParallelism()). */
  cores: number;
}

/**
 * Reads the allocation from SLURM, PBS, LSF or SGE variables (`PE_HOSTFILE`, or `NSLOTS` on this host for a
 * job without a parallel environment), else this host. `gpusPerNode` comes from the
 * resource config (batch systems other than SLURM do not say); `read` reads the node files.
 */
export function discoverAllocation(
  env: NodeJS.ProcessEnv,
  host: ThisHost,
  gpusPerNode = 0,
  read: (file: string) => string = (f) => readFileSync(f, 'utf8'),
): Allocation {
  let alloc: Allocation;
  if (env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST)
    alloc = { lrms: 'SLURM', nodes: parseSlurm(env, gpusPerNode) };
  else if (env.PBS_NODEFILE)
    alloc = { lrms: 'PBS', nodes: parsePbsNodefile(read(env.PBS_NODEFILE), gpusPerNode) };
  else if (env.LSB_MCPU_HOSTS || env.LSB_DJOB_HOSTFILE)
    alloc = {
      lrms: 'LSF',
      nodes: parseLsfHosts(
        env.LSB_MCPU_HOSTS,
        env.LSB_DJOB_HOSTFILE ? read(env.LSB_DJOB_HOSTFILE) : undefined,
        gpusPerNode,
      ),
    };
  else if (env.PE_HOSTFILE)
    alloc = { lrms: 'SGE', nodes: parseSgeHostfile(read(env.PE_HOSTFILE), gpusPerNode) };
  else if (env.JOB_ID && env.NSLOTS && (env.SGE_ROOT || env.SGE_JOB_SPOOL_DIR))
    // A job without a parallel environment (`-pe`, so one slot) gets no PE_HOSTFILE: its slots on this host.
    alloc = { lrms: 'SGE', nodes: [{ name: host.name, cores: Number(env.NSLOTS), gpus: gpusPerNode }] };
  else return { lrms: 'FORK', nodes: [{ name: host.name, cores: host.cores, gpus: gpusPerNode }] };
  if (alloc.nodes.length === 0) throw new Error(`${alloc.lrms} allocation lists no nodes`);
  return alloc;
}

/**
 * The pilot's share of the allocation: nodes in order until its `cores` and `gpus` are covered (the last
 * node only partly). If the allocation is smaller, an error that says so — unless the resource allows
 * oversubscription (test beds), in which case the missing cores and GPUs are spread over the nodes.
 */
export function fitPilot(
  alloc: Allocation,
  want: { cores: number; gpus: number },
  oversubscribe: boolean,
  resource = 'this resource',
): { nodes: SlotNode[] } | { error: string } {
  const haveCores = alloc.nodes.reduce((s, n) => s + n.cores, 0);
  const haveGpus = alloc.nodes.reduce((s, n) => s + n.gpus, 0);
  if (!oversubscribe && (want.cores > haveCores || want.gpus > haveGpus)) {
    return {
      error: `pilot asks for ${want.cores} cores and ${want.gpus} GPUs, but its allocation (${alloc.lrms}) has ${haveCores} cores and ${haveGpus} GPUs: ${describeNodes(alloc.nodes)}; resource '${resource}' does not allow oversubscription`,
    };
  }
  const nodes = alloc.nodes.map((n) => ({ ...n }));
  // Oversubscription: pretend each node has a fair share more, round robin from the agent's node.
  for (let i = 0; haveCores + i < want.cores; i++) (nodes[i % nodes.length] as SlotNode).cores++;
  for (let i = 0; haveGpus + i < want.gpus; i++) (nodes[i % nodes.length] as SlotNode).gpus++;
  const out: SlotNode[] = [];
  let cores = want.cores;
  let gpus = want.gpus;
  for (const n of nodes) {
    if (cores <= 0 && gpus <= 0) break;
    const c = Math.min(cores, n.cores);
    const g = Math.min(gpus, n.gpus);
    out.push({ name: n.name, cores: c, gpus: g });
    cores -= c;
    gpus -= g;
  }
  return { nodes: out };
}
