/**
 * The backfilling scheduler's pure part (RP's late binding, `SCHED_BACKFILLING`). Units of a backfilling
 * manager wait UNSCHEDULED in the manager's queue, bound to no pilot; an agent with free room offers it
 * (its free cores and GPUs per node) on its pull, and the pull takes the waiting units that fit that room.
 * The rule is RP 0.22's `BackfillingScheduler._reschedule`: walk the wait queue in submission order and
 * take every unit that fits what is still free; a unit that does not fit stays and the walk goes on (that
 * is the backfilling: smaller units behind a big one use the cores it cannot). Fitting is decided by the
 * agent's own slot scheduler (core/slots.ts) over the offered room, so a non-MPI unit needs one node that
 * holds it whole, as it will on the agent.
 */
import { BadParameter } from './errors.ts';
import { type SlotNode, type SlotRequest, SlotScheduler } from './slots.ts';

/** The room an agent offers on one node: cores and GPUs free there now, after the units it holds. */
export interface FreeRoom {
  cores: number;
  gpus: number;
}

/** Nodes an agent may offer in one pull (a bound on the request, far above any real allocation). */
export const MAX_FREE_NODES = 10_000;

/**
 * Reads the `free` field of a pull: a list of `{cores, gpus}` per node, non-negative integers.
 * Absent (an agent that offers nothing) is undefined.
 * @throws BadParameter naming the field and the value
 */
export function parseFreeRoom(v: unknown): FreeRoom[] | undefined {
  if (v === undefined || v === null) return undefined;
  const nonNegative = (n: unknown) => Number.isInteger(n) && (n as number) >= 0;
  if (
    !Array.isArray(v) ||
    v.length > MAX_FREE_NODES ||
    !v.every((n) => typeof n === 'object' && n !== null && nonNegative(n.cores) && nonNegative(n.gpus))
  ) {
    const shown = JSON.stringify(v)?.slice(0, 200);
    throw new BadParameter(
      `pull.free: must be a list of at most ${MAX_FREE_NODES} {cores, gpus} of non-negative integers, got ${shown}`,
    );
  }
  return v.map((n: FreeRoom) => ({ cores: n.cores, gpus: n.gpus }));
}

/** True when the room holds at least one free core (GPU-only room runs nothing: every unit needs a core). */
export function hasRoom(free: readonly FreeRoom[] | undefined): boolean {
  return (free ?? []).some((n) => n.cores > 0);
}

/**
 * Which waiting units (in queue order) an agent takes into `free`: every one that fits what the units
 * before it left, by the slot scheduler's rules. Returns their indexes, in order.
 */
export function pickFitting(waiting: readonly SlotRequest[], free: readonly FreeRoom[]): number[] {
  if (!hasRoom(free)) return [];
  const nodes: SlotNode[] = free.map((n, i) => ({ name: `n${i}`, cores: n.cores, gpus: n.gpus }));
  const room = new SlotScheduler(nodes);
  const out: number[] = [];
  waiting.forEach((r, i) => {
    if (room.allocate(r)) out.push(i);
  });
  return out;
}

/** A unit description's request, as the agent's slot scheduler reads it. */
export function requestOf(d: {
  cores?: number | undefined;
  gpus?: number | undefined;
  mpi?: boolean | undefined;
}): SlotRequest {
  return { cores: d.cores ?? 1, gpus: d.gpus ?? 0, mpi: d.mpi === true };
}

/**
 * The room an agent offers: what its nodes have free (`free`, from {@link SlotScheduler.freeNodes}) after
 * the units it already holds unstarted (`held`, in the order it will start them). The agent starts units
 * strictly in order, so if one it holds does not fit now, nothing claimed now would start before it:
 * then it offers no room at all (empty list).
 */
export function roomAfter(
  free: readonly SlotNode[],
  held: readonly SlotRequest[],
  shareGpus = false,
): FreeRoom[] {
  if (free.length === 0) return [];
  const room = new SlotScheduler(free, shareGpus);
  for (const r of held) if (!room.allocate(r)) return [];
  return room.freeNodes().map((n) => ({ cores: n.cores, gpus: n.gpus }));
}
