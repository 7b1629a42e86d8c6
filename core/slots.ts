/**
 * The agent's slot scheduler (RP's CONTINUOUS agent scheduler), pure: it knows the pilot's nodes with
 * their cores and GPUs, hands every unit concrete slots (node, core ids, GPU ids) and takes exactly those
 * back when the unit ends. A non-MPI unit stays on one node; an MPI unit may span nodes, filling them in
 * order. No node ever gives out more cores or GPUs than it has, unless the resource allows GPU sharing
 * (`shareGpus`), in which case GPU ids are handed out round robin without being counted.
 */

/** One node of the pilot as the scheduler sees it: how many cores and GPUs the pilot may use there. */
export interface SlotNode {
  name: string;
  cores: number;
  gpus: number;
}

/** What a unit asks for: `cores` in total (one rank per core for MPI units, as in RP 0.x), `gpus` in total. */
export interface SlotRequest {
  cores: number;
  gpus: number;
  mpi: boolean;
}

/** The part of a unit's placement on one node. */
export interface Slot {
  /** Index of the node in the pilot's node list (0 is the agent's own node). */
  node: number;
  name: string;
  cores: number[];
  gpus: number[];
}

interface NodeState {
  spec: SlotNode;
  freeCores: boolean[];
  freeGpus: boolean[];
  coresFree: number;
  gpusFree: number;
  nextShared: number;
}

/** Describes a pilot's size for a reason: `2 nodes × 4 cores, 2 GPUs per node` or `1 node with 2 cores`. */
export function describeNodes(nodes: readonly SlotNode[]): string {
  const same = nodes.every((n) => n.cores === nodes[0]?.cores && n.gpus === nodes[0]?.gpus);
  const gpus = (g: number) => `${g} GPU${g === 1 ? '' : 's'}`;
  if (nodes.length === 1 && nodes[0]) return `1 node with ${nodes[0].cores} cores and ${gpus(nodes[0].gpus)}`;
  if (same && nodes[0])
    return `${nodes.length} nodes × ${nodes[0].cores} cores, ${gpus(nodes[0].gpus)} per node`;
  return `${nodes.length} nodes (${nodes.map((n) => `${n.name}: ${n.cores} cores, ${gpus(n.gpus)}`).join('; ')})`;
}

/** Describes a request for a reason: `3 cores and 1 GPU on one node (not MPI)`. */
export function describeRequest(r: SlotRequest): string {
  const what = `${r.cores} core${r.cores === 1 ? '' : 's'} and ${r.gpus} GPU${r.gpus === 1 ? '' : 's'}`;
  if (!r.mpi) return `${what} on one node (not MPI)`;
  return spansNodes(r) ? `${what} (MPI, may span nodes)` : `${what} on one node (MPI with GPUs)`;
}

/**
 * Whether a request may take slots on several nodes: MPI units may (RP's CONTINUOUS), except those that need
 * GPUs: a unit's GPU ids reach all its processes as one list (CUDA_VISIBLE_DEVICES…), which is right on one
 * node only, so such a unit waits for one node that has them all.
 */
const MPI_GPUS_ONE_NODE =
  'an MPI unit with GPUs must fit on one node (per-node GPU lists for its ranks are not built yet)';

function spansNodes(r: SlotRequest): boolean {
  return r.mpi && r.gpus === 0;
}

/** Hands out and takes back slots on a fixed set of nodes. */
export class SlotScheduler {
  private readonly nodes: NodeState[];
  private readonly maxCores: number;
  private readonly totalCores: number;
  private readonly totalGpus: number;

  constructor(
    nodes: readonly SlotNode[],
    private readonly shareGpus = false,
  ) {
    if (nodes.length === 0) throw new Error('a pilot needs at least one node');
    this.nodes = nodes.map((spec) => ({
      spec,
      freeCores: Array.from({ length: spec.cores }, () => true),
      freeGpus: Array.from({ length: spec.gpus }, () => true),
      coresFree: spec.cores,
      gpusFree: spec.gpus,
      nextShared: 0,
    }));
    this.maxCores = Math.max(...nodes.map((n) => n.cores));
    this.totalCores = nodes.reduce((s, n) => s + n.cores, 0);
    this.totalGpus = nodes.reduce((s, n) => s + n.gpus, 0);
  }

  /** Cores of all nodes. */
  get cores(): number {
    return this.totalCores;
  }

  /** Cores free right now. */
  get freeCores(): number {
    return this.nodes.reduce((s, n) => s + n.coresFree, 0);
  }

  /** GPUs free right now. */
  get freeGpus(): number {
    return this.nodes.reduce((s, n) => s + n.gpusFree, 0);
  }

  /** What each node has free right now, in node order (what a backfilling agent offers on its pull). */
  freeNodes(): SlotNode[] {
    return this.nodes.map((n) => ({
      name: n.spec.name,
      cores: n.coresFree,
      gpus: this.shareGpus ? n.spec.gpus : n.gpusFree,
    }));
  }

  /**
   * Why a request can never fit this pilot, even when it is idle (undefined if it can).
   * The reason names the request and the pilot's size.
   */
  neverFits(r: SlotRequest): string | undefined {
    const fits = spansNodes(r)
      ? r.cores <= this.totalCores && r.gpus <= this.totalGpus
      : r.cores <= this.maxCores && this.nodes.some((n) => r.cores <= n.spec.cores && r.gpus <= n.spec.gpus);
    if (fits) return undefined;
    const why = `unit needs ${describeRequest(r)}, but the pilot has ${describeNodes(this.nodes.map((n) => n.spec))}`;
    return r.mpi && !spansNodes(r) ? `${why}; ${MPI_GPUS_ONE_NODE}` : why;
  }

  /** Slots for the request if they are free now, else undefined (nothing is taken then). */
  allocate(r: SlotRequest): Slot[] | undefined {
    if (r.cores > this.freeCoresUpTo(r.cores)) return undefined;
    if (!spansNodes(r)) {
      for (let i = 0; i < this.nodes.length; i++) {
        const n = this.nodes[i] as NodeState;
        if (n.coresFree >= r.cores && this.gpusAvailable(n, r.gpus)) return [this.take(i, r.cores, r.gpus)];
      }
      return undefined;
    }
    // MPI (CONTINUOUS): walk the nodes in order, taking free cores (and GPUs beside them) until satisfied.
    let cores = r.cores;
    let gpus = r.gpus;
    const plan: Array<{ i: number; cores: number; gpus: number }> = [];
    for (let i = 0; i < this.nodes.length && (cores > 0 || gpus > 0); i++) {
      const n = this.nodes[i] as NodeState;
      const c = Math.min(cores, n.coresFree);
      if (c === 0) continue;
      const g = this.shareGpus ? Math.min(gpus, n.spec.gpus) : Math.min(gpus, n.gpusFree);
      plan.push({ i, cores: c, gpus: g });
      cores -= c;
      gpus -= g;
    }
    if (cores > 0 || gpus > 0) return undefined;
    return plan.map((p) => this.take(p.i, p.cores, p.gpus));
  }

  /** Gives back exactly the slots {@link allocate} handed out. */
  release(slots: readonly Slot[]): void {
    for (const s of slots) {
      const n = this.nodes[s.node];
      if (!n) throw new Error(`release: no node ${s.node}`);
      for (const c of s.cores) {
        if (n.freeCores[c] !== false) throw new Error(`release: core ${c} of ${n.spec.name} is not taken`);
        n.freeCores[c] = true;
      }
      n.coresFree += s.cores.length;
      if (this.shareGpus) continue;
      for (const g of s.gpus) {
        if (n.freeGpus[g] !== false) throw new Error(`release: GPU ${g} of ${n.spec.name} is not taken`);
        n.freeGpus[g] = true;
      }
      n.gpusFree += s.gpus.length;
    }
  }

  /** Free cores, counting only up to `enough` (a cheap early exit for the common one-node case). */
  private freeCoresUpTo(enough: number): number {
    let sum = 0;
    for (const n of this.nodes) {
      sum += n.coresFree;
      if (sum >= enough) return sum;
    }
    return sum;
  }

  private gpusAvailable(n: NodeState, gpus: number): boolean {
    return gpus === 0 || (this.shareGpus ? n.spec.gpus >= gpus : n.gpusFree >= gpus);
  }

  private take(i: number, cores: number, gpus: number): Slot {
    const n = this.nodes[i] as NodeState;
    const coreIds = pick(n.freeCores, cores);
    n.coresFree -= cores;
    let gpuIds: number[];
    if (this.shareGpus) {
      gpuIds = [];
      for (let k = 0; k < gpus; k++) {
        gpuIds.push(n.nextShared % n.spec.gpus);
        n.nextShared++;
      }
    } else {
      gpuIds = pick(n.freeGpus, gpus);
      n.gpusFree -= gpus;
    }
    return { node: i, name: n.spec.name, cores: coreIds, gpus: gpuIds };
  }
}

/** Takes the `count` lowest free ids (the caller checked there are enough). */
function pick(free: boolean[], count: number): number[] {
  const out: number[] = [];
  for (let id = 0; id < free.length && out.length < count; id++) {
    if (free[id]) {
      free[id] = false;
      out.push(id);
    }
  }
  return out;
}

/** A pilot's size as known at submit time: its description and its resource config. */
export interface PilotSize {
  cores: number;
  gpus?: number;
  /** From the resource config; only batch resources have a node size the agent will respect. */
  coresPerNode?: number;
  gpusPerNode?: number;
}

/**
 * Why a unit can never run on a pilot, judged at submit from the pilot's description and its resource's
 * node size (undefined if it may fit). The agent judges again with the real allocation; this only catches
 * what is certain: more cores or GPUs than the pilot has, or than one node has for a non-MPI unit.
 */
export function tooBigForPilot(r: SlotRequest, p: PilotSize): string | undefined {
  const gpus = p.gpus ?? 0;
  const nodeCores = Math.min(p.cores, p.coresPerNode ?? p.cores);
  const nodeGpus = p.gpusPerNode ? Math.min(gpus, p.gpusPerNode) : gpus;
  const fits = spansNodes(r)
    ? r.cores <= p.cores && r.gpus <= gpus
    : r.cores <= nodeCores && r.gpus <= nodeGpus;
  if (fits) return undefined;
  const node = p.coresPerNode ? `, ${p.coresPerNode} cores and ${p.gpusPerNode ?? 0} GPUs per node` : '';
  const why = `unit needs ${describeRequest(r)}, but the pilot has ${p.cores} cores and ${gpus} GPUs${node}`;
  return r.mpi && !spansNodes(r) ? `${why}; ${MPI_GPUS_ONE_NODE}` : why;
}
