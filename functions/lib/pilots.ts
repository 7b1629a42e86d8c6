/**
 * Pilot operations shared by the API, the agent routes and the state machine's functions: starting a
 * pilot's execution, cancelling it, and answering Step Functions task tokens.
 */
import {
  paginateGetExecutionHistory,
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { CANCELED_ERROR } from '../../core/pilot-end.ts';
import { DEFAULT_LEASE_SECONDS } from '../../core/reconcile.ts';
import { isFinal, PilotState, pilotModel } from '../../core/states.ts';
import { ENV } from '../../stacks/manifest.ts';
import type { PilotRecord } from '../../store/index.ts';
import { env, sfnClient } from './aws.ts';
import { logger } from './log.ts';
import { wakePilot } from './queues.ts';
import { store } from './store.ts';

/** Seconds; from the deployment's environment, so every pilot of a deployment shares the budget. */
export function heartbeatSeconds(): number {
  return Number(process.env[ENV.heartbeatSeconds] ?? 60) || 60;
}

/** Pilots a session may create per minute; from the deployment's environment. */
export function pilotsPerMinute(): number {
  return Number(process.env[ENV.pilotsPerMinute] ?? 100) || 100;
}

/** Seconds a pull's units stay leased to the agent that pulled them (see core/reconcile.ts leaseAction). */
export function leaseSeconds(): number {
  return Number(process.env[ENV.leaseSeconds] ?? DEFAULT_LEASE_SECONDS) || DEFAULT_LEASE_SECONDS;
}

/** Name of a pilot's execution: one per pilot, so a retried start cannot start two. */
export function executionName(sessionId: string, pilotId: string): string {
  return `${sessionId}-${pilotId}`.replace(/[^A-Za-z0-9_-]/g, '_').slice(-80);
}

/** ARN of a pilot's execution (`arn:…:stateMachine:M` → `arn:…:execution:M:<name>`). */
export function executionArn(sessionId: string, pilotId: string): string {
  const machine = env(ENV.stateMachineArn);
  return `${machine.replace(':stateMachine:', ':execution:')}:${executionName(sessionId, pilotId)}`;
}

/**
 * Step Functions state transitions of a pilot's execution so far: its `*StateEntered` events (what
 * Standard workflows bill). Pages of 1,000 events; a pilot's history stays small (job checks back off).
 */
export async function executionTransitions(sessionId: string, pilotId: string): Promise<number> {
  let n = 0;
  for await (const page of paginateGetExecutionHistory(
    { client: sfnClient(), pageSize: 1000 },
    { executionArn: executionArn(sessionId, pilotId) },
  ))
    n += (page.events ?? []).filter((e) => e.type?.endsWith('StateEntered')).length;
  return n;
}

/** Starts the pilot's state machine execution (one per pilot, named after it, so a retry cannot start two). */
export async function startPilotExecution(pilot: PilotRecord): Promise<void> {
  const runtimeSeconds = pilot.description.runtime * 60;
  const input = {
    sid: pilot.sessionId,
    pid: pilot.uid,
    activateTimeoutSeconds: Number(process.env[ENV.activateTimeoutSeconds] ?? 600) || 600,
    jobCheckSeconds: Number(process.env[ENV.jobCheckSeconds] ?? 30) || 30,
    heartbeatSeconds: heartbeatSeconds(),
    // The agent ends itself before its walltime; the grace covers its last reports and a slow exit.
    activeTimeoutSeconds: runtimeSeconds + 300,
  };
  const name = executionName(pilot.sessionId, pilot.uid);
  try {
    await sfnClient().send(
      new StartExecutionCommand({
        stateMachineArn: env(ENV.stateMachineArn),
        name,
        input: JSON.stringify(input),
      }),
    );
  } catch (err) {
    if ((err as Error).name !== 'ExecutionAlreadyExists') throw err;
  }
}

/** True for the errors Step Functions gives for a token that is no longer waiting: nothing to do. */
function tokenGone(err: unknown): boolean {
  return ['TaskDoesNotExist', 'TaskTimedOut', 'InvalidToken'].includes((err as Error).name);
}

/** SendTaskSuccess, ignoring a token that is no longer waiting. */
export async function succeedToken(token: string | undefined, output: unknown): Promise<boolean> {
  if (!token) return false;
  try {
    await sfnClient().send(new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify(output) }));
    return true;
  } catch (err) {
    if (tokenGone(err)) return false;
    throw err;
  }
}

/** SendTaskFailure, ignoring a token that is no longer waiting. */
export async function failToken(token: string | undefined, error: string, cause: string): Promise<boolean> {
  if (!token) return false;
  try {
    await sfnClient().send(new SendTaskFailureCommand({ taskToken: token, error, cause }));
    return true;
  } catch (err) {
    if (tokenGone(err)) return false;
    throw err;
  }
}

/** SendTaskHeartbeat, ignoring a token that is no longer waiting. */
export async function heartbeatToken(token: string | undefined): Promise<boolean> {
  if (!token) return false;
  try {
    await sfnClient().send(new SendTaskHeartbeatCommand({ taskToken: token }));
    return true;
  } catch (err) {
    if (tokenGone(err)) return false;
    throw err;
  }
}

// The error name the state machine's Catch sees for a cancelled pilot lives with the finalize decision.
export { CANCELED_ERROR };

/**
 * Cancels a pilot: queue a cancel command, then fail whichever task token the state machine waits on.
 * The command is written first and the write returns the record: whichever of this and the state
 * machine's token registration comes second sees the other, so a cancel is never lost.
 */
export async function cancelPilot(sessionId: string, pilotId: string, who: string): Promise<void> {
  const pilot = await store().getPilot(sessionId, pilotId);
  if (isFinal(pilotModel, pilot.state)) return;
  const out = await store().patchPilot(sessionId, pilotId, {
    appendCommands: [{ type: 'cancel_pilot', time: new Date().toISOString() }],
    appendLog: [`cancel requested by ${who}`],
  });
  if (!out.ok) return; // became final meanwhile
  const tokens = out.record.taskTokens;
  const failed =
    (await failToken(tokens.active, CANCELED_ERROR, `cancelled by ${who}`)) ||
    (await failToken(tokens.activate, CANCELED_ERROR, `cancelled by ${who}`));
  // An Active agent's pull may be long-polling: woken, it returns now with the command, since an agent that
  // stops awaits a pull still out that may have armed units (agent/main.ts), and a local job's grace
  // before SIGKILL (3 s) is shorter than that poll (5 s). Only after the token: an agent that hears of the
  // cancel ends at once, and a job check that found its job gone before the state machine knew of the
  // cancel ended the pilot FAILED (seen in CI, endpoint mode).
  if (out.record.state === PilotState.ACTIVE) await wakePilot(sessionId, pilotId);
  logger.info('pilot cancel', { sessionId, pilotId, tokenFailed: failed });
}

/** True when a cancel command is queued for the pilot. */
export function cancelRequested(pilot: PilotRecord): boolean {
  return pilot.commands.some((c) => c.type === 'cancel_pilot');
}
