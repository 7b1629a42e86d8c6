/**
 * Task tokens. A token is minted when a state's Parameters evaluate `$$.Task.Token` and is registered at
 * once, so a worker that answers before its Lambda has even returned still finds it. It is then bound to the
 * task attempt that waits for it, and retired when that attempt ends: a retired token answers
 * TaskTimedOut if its task timed out and TaskDoesNotExist otherwise, as in AWS.
 */

import { randomBytes } from 'node:crypto';
import { ApiError } from './errors.ts';
import type { Json } from './json.ts';
import type { TaskOutcome, TaskRun } from './task-run.ts';

interface LiveToken {
  executionArn: string;
  run: TaskRun | undefined;
  /** An answer that arrived before the token was bound to its attempt; applied when it is bound. */
  early: TaskOutcome | undefined;
}

/** Why a token of a settled attempt is no longer usable. */
export function outcomeReason(outcome: TaskOutcome): 'timedOut' | 'closed' {
  return outcome.ok === false && outcome.failure.kind === 'timedOut' ? 'timedOut' : 'closed';
}

const MAX_RETIRED_TOKENS = 100_000;

// AWS limits task tokens to 1024 characters (the SDK sends them unchanged).
const MAX_TOKEN_LENGTH = 1024;

/** Every task token of one server. */
export class TokenRegistry {
  private readonly live = new Map<string, LiveToken>();
  private readonly retired = new Map<string, 'timedOut' | 'closed'>();

  /** Mints and registers a fresh token for an execution. */
  issue(executionArn: string): string {
    // Opaque like AWS's tokens; long enough that guessing one is hopeless.
    const token = `AQ${randomBytes(48).toString('base64url')}`;
    this.live.set(token, { executionArn, run: undefined, early: undefined });
    return token;
  }

  /** Binds a token to the attempt that waits for it, applying any answer that came early. */
  bind(token: string, run: TaskRun): void {
    const entry = this.live.get(token);
    if (!entry) return;
    entry.run = run;
    const early = entry.early;
    entry.early = undefined;
    if (early?.ok === true) run.succeed(early.value);
    else if (early) run.fail(early.failure);
  }

  /** Retires a token: later SendTask* calls are refused. */
  retire(token: string, reason: 'timedOut' | 'closed'): void {
    if (!this.live.delete(token)) return;
    this.retired.set(token, reason);
    // Only the TaskTimedOut-vs-TaskDoesNotExist answer depends on this memory; forget the oldest so a
    // long-lived local backend does not grow without bound.
    if (this.retired.size > MAX_RETIRED_TOKENS) {
      const oldest = this.retired.keys().next().value;
      if (oldest !== undefined) this.retired.delete(oldest);
    }
  }

  /** Retires every token of an execution (stop, timeout, end). */
  retireExecution(executionArn: string): void {
    for (const [token, entry] of this.live) {
      if (entry.executionArn !== executionArn) continue;
      const settled = entry.run?.settled;
      this.retire(token, settled ? outcomeReason(settled) : 'closed');
    }
  }

  /** The live entry of a token whose task is still waiting, or the API error AWS returns. */
  private find(token: unknown): LiveToken {
    if (typeof token !== 'string' || token.length < 1 || token.length > MAX_TOKEN_LENGTH) {
      throw new ApiError('InvalidToken', 'Invalid Token: the task token must be 1 to 1024 characters');
    }
    const entry = this.live.get(token);
    const settled = entry?.run?.settled;
    if (entry && !settled && !entry.early) return entry;
    // A task that has just ended but whose token is not retired yet answers like a retired one.
    const reason = settled ? outcomeReason(settled) : entry ? 'closed' : this.retired.get(token);
    if (reason === 'timedOut')
      throw new ApiError('TaskTimedOut', 'Task Timed Out: the task of this token timed out');
    throw new ApiError('TaskDoesNotExist', 'Task does not exist anymore');
  }

  /** SendTaskSuccess. */
  succeed(token: unknown, output: Json): void {
    const entry = this.find(token);
    if (entry.run) entry.run.succeed(output);
    else entry.early ??= { ok: true, value: output };
  }

  /** SendTaskFailure. */
  fail(token: unknown, error: string, cause: string): void {
    const entry = this.find(token);
    const failure = { kind: 'failed', error, cause } as const;
    if (entry.run) entry.run.fail(failure);
    else entry.early ??= { ok: false, failure };
  }

  /** SendTaskHeartbeat. */
  heartbeat(token: unknown): void {
    this.find(token).run?.heartbeat();
  }
}
