/**
 * The backfilling scheduler's control-plane side (late binding; the pure rule is core/backfill.ts).
 *
 * Units of a backfilling manager wait UNSCHEDULED in the manager's queue: the byPilot partition
 * `<sid>#<umgr>#queue` (store/keys.ts `queueKey`), in uid order, bound to no pilot. An agent's pull offers
 * the room it has free; {@link claimQueued} takes the waiting units that fit it, in queue order, each with
 * ONE guarded write (state UNSCHEDULED and still in that queue → claimed by this pilot, leased to this
 * pull), so two agents racing for one unit cannot both get it. Units joining a queue (submit, a pilot's
 * end) wake the pulls of the manager's ACTIVE pilots ({@link wakeQueue}).
 */
import { type FreeRoom, hasRoom, pickFitting, requestOf, roomAfter } from '../../core/backfill.ts';
import { allItems } from '../../core/pages.ts';
import { claimState, UnitState } from '../../core/states.ts';
import type { PilotRecord, UnitRecord } from '../../store/index.ts';
import { cancelUnitRecords } from './cancel.ts';
import { type QueuedUnit, wakePilot } from './queues.ts';
import { store } from './store.ts';

/** Waiting units a pull looks at per queue and round: the head of the queue (RP walks its whole wait queue). */
const WINDOW = 200;
/** Rounds per queue when claims were lost to another agent (the room they would have used is still free). */
const ROUNDS = 3;

/** What a pull claimed from the queues, and whether units still wait there that it did not take. */
export interface QueueClaim {
  units: QueuedUnit[];
  /** Units wait in a queue of this pilot (did not fit, lost races, or the room was full): pull again soon. */
  backlog: boolean;
}

const queued = (u: UnitRecord): QueuedUnit => ({
  uid: u.uid,
  ...(u.name ? { name: u.name } : {}),
  description: u.description,
});

/**
 * Claims for `pilot` the units of its backfilling managers' queues that fit `free`, at most `max`, in
 * queue order (managers in uid order). Claimed units are bound to the pilot, SCHEDULING (STAGING_INPUT
 * with input directives) and leased to `lease` until `leaseUntil`, exactly as a pull's claim of units
 * bound at submit. With no room offered nothing is read, and the answer assumes a backlog.
 */
export async function claimQueued(
  pilot: PilotRecord,
  free: readonly FreeRoom[] | undefined,
  max: number,
  lease: string,
  leaseUntil: number,
): Promise<QueueClaim> {
  const umgrs = pilot.backfill ?? [];
  const out: QueuedUnit[] = [];
  let backlog = false;
  let room: FreeRoom[] = [...(free ?? [])];
  for (const umid of umgrs) {
    for (let round = 0; round < ROUNDS; round++) {
      if (!hasRoom(room) || out.length >= max) {
        backlog = true;
        break;
      }
      const page = await store().listQueuedUnits(pilot.sessionId, umid, { limit: WINDOW });
      const waiting = page.items.filter((u) => u.state === UnitState.UNSCHEDULED && u.pilot === undefined);
      if (waiting.length === 0) break;
      const picks = pickFitting(
        waiting.map((u) => requestOf(u.description)),
        room,
      )
        .slice(0, max - out.length)
        .map((i) => waiting[i] as UnitRecord);
      if (picks.length < waiting.length || page.next) backlog = true;
      if (picks.length === 0) break;
      const outs = await store().transitionUnits(
        pilot.sessionId,
        picks.map((u) => ({
          uid: u.uid,
          target: claimState(u.description),
          from: UnitState.UNSCHEDULED,
          expect: { queue: umid },
          patch: { pilot: pilot.uid, lease, leaseUntil },
        })),
      );
      const won = outs.flatMap((o) => (o.ok ? [o.record] : []));
      out.push(...won.map(queued));
      room = roomAfter(
        room.map((n, i) => ({ name: `n${i}`, ...n })),
        won.map((u) => requestOf(u.description)),
      );
      // Every claim won: this queue gave what fits. Some lost to another agent: their room is still free.
      if (won.length === picks.length) break;
      backlog = true;
    }
  }
  return { units: out, backlog };
}

/**
 * Wakes the pulls of the ACTIVE pilots that take units from `umid`'s queue: units just joined it.
 * A wake-up that fails (a pilot's queue is gone with its end) is only logged: agents with room pull
 * again within a second anyway.
 */
export async function wakeQueue(sid: string, umid: string, except?: string): Promise<void> {
  const umgr = await store().getUnitManager(sid, umid);
  const pids = umgr.pilots.filter((p) => p !== except);
  if (pids.length === 0) return;
  const pilots = await store().getPilots(sid, pids);
  await Promise.all(
    pilots
      .filter((p) => p.state === 'Active' && p.backfill?.includes(umid))
      .map((p) => wakePilot(sid, p.uid)),
  );
}

/**
 * Cancels every unit waiting in `umid`'s queue (a closed session: no pilot will ever come for them).
 * Returns how many were cancelled.
 */
export async function cancelQueued(sid: string, umid: string, why: string): Promise<number> {
  const waiting = await allItems((next) => store().listQueuedUnits(sid, umid, { next }));
  return (await cancelUnitRecords(sid, waiting, why)).cancelled;
}
