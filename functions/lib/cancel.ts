/**
 * Unit cancels, shared by `cancelUnits` and `removePilots` without drain. RP 0.22's rule: a unit not
 * running yet is CANCELED in the table at once; a running one is killed by its agent, which reports
 * CANCELED. The agent hears of it within a round trip: the command is written on the pilot record and
 * the pilot's pull is woken (functions/callbacks/commands.ts).
 */
import { groupBy } from '../../core/group.ts';
import { claimState, isFinal, pilotModel, UnitState, unitModel } from '../../core/states.ts';
import type { UnitRecord } from '../../store/index.ts';
import { wakePilot } from './queues.ts';
import { store } from './store.ts';

/** How many units were CANCELED in the table, and how many were told to their agents. */
export interface CancelOutcome {
  cancelled: number;
  signalled: number;
}

/** Cancels `units` (final ones are left alone); `why` goes to each log the table cancel writes. */
export async function cancelUnitRecords(
  sid: string,
  units: readonly UnitRecord[],
  why: string,
): Promise<CancelOutcome> {
  // A unit waiting in a backfilling manager's queue leaves it with its cancel, guarded by the queue: one an
  // agent claimed meanwhile is refused here and cancelled below as the bound unit it now is.
  const waiting = units.filter((u) => u.pilot === undefined && u.state === UnitState.UNSCHEDULED);
  const fromQueue =
    waiting.length === 0
      ? []
      : await store().transitionUnits(
          sid,
          waiting.map((u) => ({
            uid: u.uid,
            target: UnitState.CANCELED,
            from: UnitState.UNSCHEDULED,
            expect: { queue: u.umgr },
            patch: { appendLog: [why], pilot: null },
          })),
        );
  const claimed = fromQueue.flatMap((o) =>
    !o.ok && o.current && !isFinal(unitModel, o.current.state) ? [o.current] : [],
  );
  const rest = [...units.filter((u) => !waiting.includes(u)), ...claimed];
  const bound = await cancelBound(sid, rest, why);
  return { ...bound, cancelled: bound.cancelled + fromQueue.filter((o) => o.ok).length };
}

async function cancelBound(sid: string, units: readonly UnitRecord[], why: string): Promise<CancelOutcome> {
  // Also one an agent has claimed but not started: its write-ahead start is then refused, so it is never
  // spawned. The guard leaves a unit that started meanwhile to its agent.
  const open = units.filter((u) => !isFinal(unitModel, u.state));
  const notRunning = open.filter((u) => unitModel.order[u.state] < unitModel.order.Executing);
  const outs = await store().transitionUnits(
    sid,
    notRunning.map((u) => ({
      uid: u.uid,
      target: UnitState.CANCELED,
      before: UnitState.EXECUTING,
      patch: { appendLog: [why] },
    })),
  );
  // Every open unit bound to a pilot that its agent may hold is also told to the agent: a running one is
  // killed there, a claimed one dropped (a restartable unit is spawned without a write-ahead, so only the
  // agent can stop it). One cancelled in the table before any claim is not: the guarded write proved it
  // unclaimed, and its claim is now refused, so the agent never sees it (and the pilot's command list does
  // not grow by every unit of a large cancel of queued work).
  const unclaimed = new Set(
    outs.flatMap((o, i) => {
      const u = notRunning[i] as UnitRecord;
      return o.ok && unitModel.order[u.state] < unitModel.order[claimState(u.description)] ? [u.uid] : [];
    }),
  );
  const onAgent = groupBy(
    open.filter((u) => u.pilot !== undefined && !unclaimed.has(u.uid)),
    (u) => u.pilot as string,
  );
  await Promise.all([...onAgent].map(([pid, us]) => signalAgent(sid, pid, us)));
  return {
    cancelled: outs.filter((o) => o.ok).length,
    signalled: [...onAgent.values()].reduce((n, us) => n + us.length, 0),
  };
}

/**
 * Queues a cancel of `units` for the pilot's agent and wakes its pull, so the command reaches the agent
 * within one round trip rather than at its next heartbeat. A wake-up that fails (the pilot's queue is
 * gone with its end) only delays delivery to the agent's next call: the command is on the record.
 */
async function signalAgent(sid: string, pilotId: string, units: readonly UnitRecord[]): Promise<void> {
  const time = new Date().toISOString();
  const out = await store().patchPilot(sid, pilotId, {
    appendCommands: [{ type: 'cancel_units', uids: units.map((u) => u.uid), time }],
  });
  if (!out.ok || isFinal(pilotModel, out.record.state)) return;
  await wakePilot(sid, pilotId);
}
