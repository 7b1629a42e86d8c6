/**
 * The reconciler (a scheduled Lambda; a timer in the embedded backend): finishes the end of every pilot
 * whose state machine execution cannot — it ended without finalizing (Finalize failed past its retries, a
 * step kept failing, the execution was stopped) or it never started. For each live pilot it reads the
 * execution's status, asks the pure rule in core/reconcile.ts, and where that says so runs the very
 * Finalize handler the machine would have run: the final state and reason, the batch job's cancel, the
 * unit sweep, the retirement.
 *
 * It also returns expired leases: a unit that an ACTIVE pilot's pull claimed but nobody started within the
 * lease (the pull's answer was taken and never retried, the agent dropped it) goes back to PENDING_EXECUTION
 * and to the pilot's queue, where the next pull claims it afresh (core/reconcile.ts leaseAction).
 *
 * A silent agent is not the reconciler's business while its execution runs: the Active state's
 * HeartbeatSeconds ends the pilot then, with the heartbeat as reason.
 *
 * Last, it purges the records of sessions closed with cleanup whose retention has passed (purge.ts).
 */
import { DescribeExecutionCommand } from '@aws-sdk/client-sfn';
import { allItems } from '../../core/pages.ts';
import { RECONCILED_ERROR } from '../../core/pilot-end.ts';
import { type ExecutionStatus, leaseAction, reconcileAction } from '../../core/reconcile.ts';
import { isFinal, PilotState, pilotModel } from '../../core/states.ts';
import { mapLimit } from '../../store/batch.ts';
import type { PilotRecord, UnitRecord } from '../../store/index.ts';
import { sfnClient } from '../lib/aws.ts';
import { logger } from '../lib/log.ts';
import { withMetrics } from '../lib/metrics.ts';
import { executionArn } from '../lib/pilots.ts';
import { sendUnits } from '../lib/queues.ts';
import { store } from '../lib/store.ts';
import { handler as finalize } from './finalize.ts';
import { type PurgeReport, purgeBudget, purgeSessions } from './purge.ts';

/** What one run did, for the log and for tests. */
export interface ReconcileReport {
  /** Live pilots looked at. */
  checked: number;
  /** Pilots finalized here, with the reason. */
  finalized: { sid: string; pid: string; reason: string }[];
  /** Pilots whose finalize (or lease return) failed again (they stay live for the next run). */
  failed: { sid: string; pid: string; error: string }[];
  /** Units whose expired lease was returned to their pilot's queue (including those sent again). */
  returned: { sid: string; pid: string; uids: string[] }[];
  /** Sessions closed with cleanup whose records this run purged, left for later, or failed to purge. */
  purge: PurgeReport;
}

async function executionStatus(pilot: PilotRecord): Promise<ExecutionStatus> {
  try {
    const out = await sfnClient().send(
      new DescribeExecutionCommand({ executionArn: executionArn(pilot.sessionId, pilot.uid) }),
    );
    return (out.status ?? 'MISSING') as ExecutionStatus;
  } catch (err) {
    if ((err as Error).name === 'ExecutionDoesNotExist') return 'MISSING';
    throw err;
  }
}

/**
 * Returns the expired leases of one ACTIVE pilot's units: each unstarted claim past its deadline moves back
 * to PENDING_EXECUTION (guarded by its lease holder: a start that got there first keeps the unit), then goes
 * to the pilot's queue, then loses its deadline. A run that dies before the last step leaves the deadline,
 * and the next run sends the unit again (`requeue`): a unit is never left out of its queue, and a duplicate
 * message is harmless (the claim is authoritative). Returns the uids sent to the queue.
 */
async function returnExpiredLeases(pilot: PilotRecord, nowMs: number): Promise<string[]> {
  const sid = pilot.sessionId;
  const units = (await allItems((next) => store().listPilotUnits(sid, pilot.uid, { next }))).filter(
    (u) => u.pilot === pilot.uid,
  );
  const toReturn: UnitRecord[] = [];
  const toQueue: UnitRecord[] = [];
  for (const u of units) {
    const view = {
      state: u.state,
      ...(u.lease === undefined ? {} : { lease: u.lease }),
      ...(u.leaseUntil === undefined ? {} : { leaseUntilMs: u.leaseUntil }),
      ...(u.armed ? { armed: true } : {}),
    };
    const action = leaseAction(view, nowMs);
    if (action.kind === 'return') toReturn.push(u);
    else if (action.kind === 'requeue') toQueue.push(u);
  }
  const outs = await store().returnLeases(
    sid,
    toReturn.map((u) => ({
      uid: u.uid,
      expect: { pilot: pilot.uid, ...(u.lease ? { lease: u.lease } : {}) },
    })),
  );
  for (const o of outs) if (o.ok) toQueue.push(o.record);
  if (toQueue.length === 0) return [];
  await sendUnits(
    sid,
    pilot.uid,
    toQueue.map((u) => ({ uid: u.uid, ...(u.name ? { name: u.name } : {}), description: u.description })),
  );
  await mapLimit(toQueue, 16, (u) => store().clearLeaseDeadline(sid, u.uid, pilot.uid));
  return toQueue.map((u) => u.uid);
}

/** One reconciliation pass over every live pilot. */
async function run(): Promise<ReconcileReport> {
  const report: ReconcileReport = {
    checked: 0,
    finalized: [],
    failed: [],
    returned: [],
    purge: { purged: [], waiting: [], failed: [] },
  };
  const now = Date.now();
  let next: string | undefined;
  do {
    const page = await store().listLivePilots({ limit: 100, ...(next ? { next } : {}) });
    next = page.next;
    for (const pilot of page.items) {
      report.checked++;
      const ids = { sid: pilot.sessionId, pid: pilot.uid };
      try {
        const action = reconcileAction(
          {
            final: isFinal(pilotModel, pilot.state),
            submittedMs: Date.parse(pilot.submitted ?? pilot.stateHistory[0]?.time ?? ''),
            execution: await executionStatus(pilot),
          },
          now,
        );
        if (action.kind === 'none') {
          if (pilot.state === PilotState.ACTIVE) {
            const uids = await returnExpiredLeases(pilot, now);
            if (uids.length) report.returned.push({ ...ids, uids });
          }
          continue;
        }
        await finalize({ ...ids, error: { Error: RECONCILED_ERROR, Cause: action.reason } });
        report.finalized.push({ ...ids, reason: action.reason });
      } catch (err) {
        // One pilot that cannot be finalized now must not stop the others; it stays live for the next run.
        report.failed.push({ ...ids, error: (err as Error).message });
      }
    }
  } while (next);
  // After the pilots: a pilot ended above may be what a session's purge was waiting for.
  const purgeStart = Date.now();
  report.purge = await purgeSessions(purgeStart, purgeBudget(purgeStart));
  const { purged, failed } = report.purge;
  if (
    report.finalized.length ||
    report.failed.length ||
    report.returned.length ||
    purged.length ||
    failed.length
  )
    logger.info('reconciled', { ...report });
  return report;
}

/** The Lambda entry: {@link run}, with its log context and metrics. */
export const handler = withMetrics(run, { sweeps: true });
