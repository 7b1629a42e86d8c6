/**
 * Restart of a durable embedded backend. DynamoDB keeps its data on disk, but SQS (fauxqs) and the Step
 * Functions emulator keep theirs in memory, so what they held is rebuilt from the table — the source of
 * truth: for every live pilot that is not final, its queue is created again, the units bound to it that
 * no agent has claimed yet are queued again, and its state machine execution is started again. A new
 * execution of a pilot whose job runs picks it up where it is: Launch returns the recorded job instead of
 * launching a second one, WaitActive sees the agent ACTIVE and lets go at once, Active takes the agent's
 * heartbeats. In AWS nothing of this is needed: the services keep their own state.
 */
import { isFinal, pilotModel } from '../core/states.ts';
import { startPilotExecution } from '../functions/lib/pilots.ts';
import { createPilotQueue, sendUnits } from '../functions/lib/queues.ts';
import { store } from '../functions/lib/store.ts';
import { unclaimedBound } from '../functions/lib/units.ts';
import type { PilotRecord, UnitRecord } from '../store/index.ts';

/** What a restart picked up again. */
export interface Recovery {
  pilots: number;
  requeued: number;
}

async function pilotUnits(pilot: PilotRecord): Promise<UnitRecord[]> {
  const out: UnitRecord[] = [];
  let next: string | undefined;
  do {
    const page = await store().listPilotUnits(pilot.sessionId, pilot.uid, next ? { next } : {});
    out.push(...page.items);
    next = page.next;
  } while (next);
  return out;
}

/** Rebuilds queues and executions of the live pilots (see the module comment). */
export async function recoverPilots(): Promise<Recovery> {
  const done: Recovery = { pilots: 0, requeued: 0 };
  let next: string | undefined;
  do {
    const page = await store().listLivePilots({ limit: 100, ...(next ? { next } : {}) });
    next = page.next;
    // Final pilots whose sweep did not finish are the reconciler's.
    for (const pilot of page.items.filter((p) => !isFinal(pilotModel, p.state))) {
      await createPilotQueue(pilot.sessionId, pilot.uid);
      const waiting = (await pilotUnits(pilot)).filter((u) => u.pilot === pilot.uid && unclaimedBound(u));
      await sendUnits(
        pilot.sessionId,
        pilot.uid,
        waiting.map((u) => ({ uid: u.uid, ...(u.name ? { name: u.name } : {}), description: u.description })),
      );
      await startPilotExecution(pilot);
      done.pilots++;
      done.requeued += waiting.length;
    }
  } while (next);
  return done;
}
