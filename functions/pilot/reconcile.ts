/**
 * The reconciler (a scheduled Lambda; a timer in the embedded backend): finishes the end of every pilot
 * whose state machine execution cannot — it ended without finalizing (Finalize failed past its retries, a
 * step kept failing, the execution was stopped) or it never started. For each live pilot it reads the
 * execution's status, asks the pure rule in core/reconcile.ts, and where that says so runs the very
 * Finalize handler the machine would have run: the final state and reason, the batch job's cancel, the
 * unit sweep, the retirement.
 *
 * A silent agent is not the reconciler's business while its execution runs: the Active state's
 * HeartbeatSeconds ends the pilot then, with the heartbeat as reason.
 */
import { DescribeExecutionCommand } from '@aws-sdk/client-sfn';
import { RECONCILED_ERROR } from '../../core/pilot-end.ts';
import { type ExecutionStatus, reconcileAction } from '../../core/reconcile.ts';
import { isFinal, pilotModel } from '../../core/states.ts';
import type { PilotRecord } from '../../store/index.ts';
import { sfnClient } from '../lib/aws.ts';
import { logger } from '../lib/log.ts';
import { withMetrics } from '../lib/metrics.ts';
import { executionArn } from '../lib/pilots.ts';
import { store } from '../lib/store.ts';
import { handler as finalize } from './finalize.ts';

/** What one run did, for the log and for tests. */
export interface ReconcileReport {
  /** Live pilots looked at. */
  checked: number;
  /** Pilots finalized here, with the reason. */
  finalized: { sid: string; pid: string; reason: string }[];
  /** Pilots whose finalize failed again (they stay live for the next run). */
  failed: { sid: string; pid: string; error: string }[];
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

/** One reconciliation pass over every live pilot. */
async function run(): Promise<ReconcileReport> {
  const report: ReconcileReport = { checked: 0, finalized: [], failed: [] };
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
        if (action.kind === 'none') continue;
        await finalize({ ...ids, error: { Error: RECONCILED_ERROR, Cause: action.reason } });
        report.finalized.push({ ...ids, reason: action.reason });
      } catch (err) {
        // One pilot that cannot be finalized now must not stop the others; it stays live for the next run.
        report.failed.push({ ...ids, error: (err as Error).message });
      }
    }
  } while (next);
  if (report.finalized.length || report.failed.length) logger.info('reconciled', { ...report });
  return report;
}

/** The Lambda entry: {@link run}, with its log context and metrics. */
export const handler = withMetrics(run, { sweeps: true });
