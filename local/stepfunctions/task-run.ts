/**
 * One attempt of one Task state: the settle-once outcome that the resource call, SendTask* calls, timers and
 * StopExecution all race to decide. Whatever decides first wins; the rest are ignored. Every timer is cleared
 * on settling, so a finished or aborted task leaves no handle behind.
 */

import { MAX_TIMER_SECONDS } from './definition.ts';
import type { Json } from './json.ts';

/** How a task attempt ended badly. */
export interface TaskFailure {
  /** `failed`: the task reported an error; `timedOut`: a timer fired; `aborted`: its execution stopped. */
  kind: 'failed' | 'timedOut' | 'aborted';
  error: string;
  cause: string;
}

/** How a task attempt ended. */
export type TaskOutcome = { ok: true; value: Json } | { ok: false; failure: TaskFailure };

/** Timer settings of an attempt, in seconds; undefined means none. */
export interface TaskTimers {
  timeoutSeconds: number | undefined;
  heartbeatSeconds: number | undefined;
}

function arm(seconds: number | undefined, onFire: () => void): NodeJS.Timeout | undefined {
  if (seconds === undefined || seconds > MAX_TIMER_SECONDS) return undefined;
  return setTimeout(onFire, seconds * 1000);
}

/** A Task attempt in flight. */
export class TaskRun {
  /** Resolves (never rejects) with the outcome. */
  readonly done: Promise<TaskOutcome>;
  private outcome: TaskOutcome | undefined;
  private resolve!: (outcome: TaskOutcome) => void;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;

  constructor(private readonly timers: TaskTimers) {
    this.done = new Promise((resolve) => {
      this.resolve = resolve;
    });
  }

  /** The outcome, once settled. */
  get settled(): TaskOutcome | undefined {
    return this.outcome;
  }

  /** Starts the TimeoutSeconds and HeartbeatSeconds clocks (AWS starts both when the task starts). */
  start(): void {
    if (this.outcome) return;
    const { timeoutSeconds } = this.timers;
    this.timeoutTimer = arm(timeoutSeconds, () =>
      this.settle({
        ok: false,
        failure: {
          kind: 'timedOut',
          error: 'States.Timeout',
          cause: `Task timed out after ${timeoutSeconds} s`,
        },
      }),
    );
    this.armHeartbeat();
  }

  private armHeartbeat(): void {
    const { heartbeatSeconds } = this.timers;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = arm(heartbeatSeconds, () =>
      this.settle({
        ok: false,
        failure: {
          kind: 'timedOut',
          error: 'States.HeartbeatTimeout',
          cause: `No heartbeat received for ${heartbeatSeconds} s`,
        },
      }),
    );
  }

  /** Restarts the heartbeat clock (SendTaskHeartbeat). */
  heartbeat(): void {
    if (!this.outcome) this.armHeartbeat();
  }

  /** Settles successfully; false if the attempt had already ended. */
  succeed(value: Json): boolean {
    return this.settle({ ok: true, value });
  }

  /** Settles with a failure; false if the attempt had already ended. */
  fail(failure: TaskFailure): boolean {
    return this.settle({ ok: false, failure });
  }

  private settle(outcome: TaskOutcome): boolean {
    if (this.outcome) return false;
    this.outcome = outcome;
    if (this.timeoutTimer) clearTimeout(this.timeoutTimer);
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.timeoutTimer = undefined;
    this.heartbeatTimer = undefined;
    this.resolve(outcome);
    return true;
  }
}
