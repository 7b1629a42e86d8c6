/**
 * The reconciler's rule: what to do with a pilot whose end has not been fully processed.
 *
 * Every pilot is "live" from its creation until Finalize has recorded its final state, swept its units
 * and retired it. Normally the pilot's state machine execution does all of that. The reconciler looks at
 * the live pilots from outside the machine and finishes the job when the machine cannot: its execution
 * ended without finalizing (Finalize failed past its retries, a Lambda step kept failing, someone stopped
 * the execution), or it never started. Pure: the caller reads the pilot and its execution and acts.
 */

/** Status of a pilot's state machine execution, as DescribeExecution reports it; `MISSING` when there is none. */
export type ExecutionStatus =
  | 'RUNNING'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'TIMED_OUT'
  | 'ABORTED'
  | 'PENDING_REDRIVE'
  | 'MISSING';

/** What the reconciler sees of one live pilot. */
export interface LivePilotView {
  /** True when the pilot's state is final (DONE, FAILED, CANCELED). */
  final: boolean;
  /** When the pilot was submitted (ms since the epoch). */
  submittedMs: number;
  execution: ExecutionStatus;
}

/**
 * - `none`: the execution is running and will finalize the pilot itself (a RUNNING execution of a final
 *   pilot is in its Finalize step).
 * - `finalize`: end the pilot (FAILED with `reason` unless it is final already), sweep its units, retire it —
 *   exactly what the Finalize step does.
 */
export type ReconcileAction = { kind: 'none' } | { kind: 'finalize'; reason: string };

/**
 * Seconds a pilot may exist without an execution: the API creates the pilot first and starts its
 * execution right after, so a young pilot without one is normal.
 */
export const START_GRACE_SECONDS = 120;

/** The reconciler's decision for one live pilot at `nowMs`. */
export function reconcileAction(view: LivePilotView, nowMs: number): ReconcileAction {
  if (view.execution === 'RUNNING') return { kind: 'none' };
  if (view.execution === 'MISSING') {
    if (!view.final && nowMs - view.submittedMs < START_GRACE_SECONDS * 1000) return { kind: 'none' };
    return {
      kind: 'finalize',
      reason: view.final
        ? 'pilot ended but its units were not swept (no execution found)'
        : 'pilot execution never started',
    };
  }
  return {
    kind: 'finalize',
    reason: view.final
      ? `pilot execution ended ${view.execution} before its units were swept`
      : `pilot execution ended ${view.execution} without finalizing the pilot`,
  };
}
