/**
 * The finalize decision: the final state a pilot ends in, and a reason a user can act on, from what its
 * state machine saw — the agent's own outcome, or the error its Catch caught. Pure, so that every path
 * (walltime, cancel, lost heartbeat, job gone, launch refused) is tested without a state machine; the
 * Finalize Lambda reads the pilot and the deployment's heartbeat budget and passes them in.
 */
import {
  ACTIVATION_TIMEOUT_ERROR,
  AGENT_LOST_ERROR,
  agentLostReason,
  JOB_ENDED_ERROR,
  OVERRAN_ERROR,
  QUEUE_TIMEOUT_ERROR,
} from './job-checks.ts';
import { PilotState, UnitState } from './states.ts';

/** Error name the state machine's Catch sees for a cancelled pilot. */
export const CANCELED_ERROR = 'Sortie.Canceled';

/** Error name the reconciler passes when it finalizes a pilot whose execution could not. */
export const RECONCILED_ERROR = 'Sortie.ExecutionLost';

/** Errors the pilot's own functions (and the reconciler) raise whose cause is already the reason to show. */
const FAILURE_ERRORS = [
  JOB_ENDED_ERROR,
  ACTIVATION_TIMEOUT_ERROR,
  QUEUE_TIMEOUT_ERROR,
  OVERRAN_ERROR,
  'Sortie.LaunchFailed',
  RECONCILED_ERROR,
];

/**
 * The reason of a pilot that ended at its walltime (the agent's own words), and of every unit it had to
 * kill then: those did not finish, so they are FAILED with this reason, not CANCELED (issue 11).
 */
export const RUNTIME_REACHED = 'pilot runtime reached';

/** What the state machine hands Finalize: the agent's outcome, or the error it caught. */
export interface PilotEndInput {
  outcome?: { state?: string; reason?: string };
  error?: { Error?: string; Cause?: string };
}

/** A Lambda's Cause is its error as JSON; show the message, or the raw text when it is not JSON. */
export function causeText(cause: string | undefined): string {
  if (!cause) return '';
  try {
    const c = JSON.parse(cause) as { errorMessage?: string };
    return c.errorMessage ?? cause;
  } catch {
    return cause;
  }
}

/**
 * Final state and reason. `pilotState` is the pilot's state when Finalize runs (it tells a walltime
 * overrun from an agent that never activated); `heartbeatSeconds` is the budget a lost agent missed.
 */
export function decidePilotEnd(
  ev: PilotEndInput,
  pilotState: PilotState,
  heartbeatSeconds: number,
): { state: PilotState; reason: string } {
  if (ev.outcome) {
    const state = ev.outcome.state === PilotState.DONE ? PilotState.DONE : PilotState.FAILED;
    return { state, reason: ev.outcome.reason ?? 'agent ended' };
  }
  const name = ev.error?.Error ?? 'Unknown';
  const cause = causeText(ev.error?.Cause);
  if (name === CANCELED_ERROR) return { state: PilotState.CANCELED, reason: cause || 'cancelled' };
  // Step Functions' own heartbeat clock inside one turn of the Active wait, or a job check across turns.
  if (name === 'States.HeartbeatTimeout' || name === AGENT_LOST_ERROR) {
    return { state: PilotState.FAILED, reason: agentLostReason(heartbeatSeconds) };
  }
  if (FAILURE_ERRORS.includes(name)) return { state: PilotState.FAILED, reason: cause || name };
  if (name === 'States.Timeout') {
    return pilotState === PilotState.ACTIVE
      ? { state: PilotState.FAILED, reason: 'agent did not end at its walltime' }
      : {
          state: PilotState.FAILED,
          reason: `agent did not become active in time (pilot was ${pilotState})`,
        };
  }
  return { state: PilotState.FAILED, reason: `${name}: ${cause}`.replace(/: $/, '') };
}

/**
 * What the sweep does to a pilot's unit that was executing (or claimed, when it cannot be rescheduled)
 * when the pilot ended: CANCELED only when the user cancelled the pilot (RP 0.22), otherwise FAILED —
 * with "pilot runtime reached" when the walltime ended it, else naming the pilot's end.
 */
export function lostUnit(
  pilotId: string,
  pilotState: PilotState,
  reason: string,
): { state: UnitState; reason: string } {
  if (pilotState === PilotState.CANCELED)
    return { state: UnitState.CANCELED, reason: `pilot ${pilotId} ended ${pilotState}: ${reason}` };
  if (pilotState === PilotState.DONE && reason === RUNTIME_REACHED)
    return { state: UnitState.FAILED, reason: `${RUNTIME_REACHED} (pilot ${pilotId})` };
  return { state: UnitState.FAILED, reason: `pilot ${pilotId} ended ${pilotState}: ${reason}` };
}
