/**
 * One execution: drives aws-local-stepfunctions, owns the status DescribeExecution reports, the history,
 * the `$$.Task.Token` minting, the execution-level timeout and StopExecution.
 */

import type { StateMachine } from 'aws-local-stepfunctions';
import type { PreparedDefinition } from './definition.ts';
import { MAX_TIMER_SECONDS } from './definition.ts';
import { ABORTED_ERROR } from './errors.ts';
import { History } from './history.ts';
import { containsString, type Json, toJson } from './json.ts';
import type { ResourceClients } from './resources.ts';
import type { TaskRun } from './task-run.ts';
import { runTaskState, type TaskHost } from './task-state.ts';
import type { TokenRegistry } from './tokens.ts';

/** Execution statuses as the API reports them. */
export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

/** The state machine an execution runs (a snapshot: later updates do not affect running executions). */
export interface MachineSnapshot {
  arn: string;
  name: string;
  roleArn: string;
  prepared: PreparedDefinition;
  engine: StateMachine;
}

/** Server-wide things an execution uses. */
export interface ExecutionDeps {
  region: string;
  tokens: TokenRegistry;
  clients: ResourceClients;
}

type LibraryRun = ReturnType<StateMachine['run']>;
type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * How aws-local-stepfunctions reports a failed execution: an ExecutionError whose `cause` is the state's
 * error. A Fail state without Error/Cause comes back with the library's placeholder name and message,
 * which AWS would leave empty.
 */
function failureOf(thrown: unknown): { error: string | undefined; cause: string | undefined } {
  const inner = thrown instanceof Error && thrown.cause instanceof Error ? thrown.cause : thrown;
  if (!(inner instanceof Error)) return { error: 'States.Runtime', cause: String(inner) };
  if (inner.constructor.name === 'FailStateError') {
    return {
      error: inner.name === 'FailStateError' ? undefined : inner.name,
      cause: inner.message === 'Execution failed because of a Fail state' ? undefined : inner.message,
    };
  }
  return { error: inner.name, cause: inner.message };
}

/** A running or finished execution. */
export class Execution implements TaskHost {
  status: ExecutionStatus = 'RUNNING';
  readonly startDate = Date.now();
  stopDate: number | undefined;
  output: string | undefined;
  error: string | undefined;
  cause: string | undefined;
  readonly history = new History();
  /** Settles when the execution has ended and its final history event is written. */
  readonly finished: Promise<void>;
  readonly region: string;
  readonly tokens: TokenRegistry;
  readonly clients: ResourceClients;

  private readonly runs = new Set<TaskRun>();
  private pendingToken: string | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private abortLibraryRun: () => void = () => {};

  /**
   * Starts the execution at once (the first states may run before the constructor returns).
   * @param input - the execution input, already checked to be JSON
   */
  constructor(
    readonly executionArn: string,
    readonly name: string,
    readonly machine: MachineSnapshot,
    readonly input: string,
    deps: ExecutionDeps,
  ) {
    this.region = deps.region;
    this.tokens = deps.tokens;
    this.clients = deps.clients;
    this.history.add('ExecutionStarted', { input, roleArn: machine.roleArn });
    this.finished = this.start();
  }

  /** True until the execution ends, is stopped or times out. */
  get running(): boolean {
    return this.status === 'RUNNING';
  }

  /** Mints the token of the Task state whose Parameters are being evaluated (one per attempt). */
  private mintToken(): string {
    this.pendingToken ??= this.tokens.issue(this.executionArn);
    return this.pendingToken;
  }

  claimToken(params: Json): string | undefined {
    const token = this.pendingToken;
    this.pendingToken = undefined;
    if (token === undefined) return undefined;
    // A token minted by a state whose Parameters then failed to evaluate belongs to no task: drop it.
    if (containsString(params, token)) return token;
    this.tokens.retire(token, 'closed');
    return undefined;
  }

  track(run: TaskRun): void {
    this.runs.add(run);
  }

  untrack(run: TaskRun): void {
    this.runs.delete(run);
  }

  private async start(): Promise<void> {
    const { prepared, engine } = this.machine;
    const handlers: { [state: string]: (input: unknown) => Promise<Json> } = {};
    for (const [stateName, spec] of prepared.tasks) {
      handlers[stateName] = (wrapped) => runTaskState(this, spec, wrapped);
    }
    const mint = () => this.mintToken();
    const context = {
      Execution: { Id: this.executionArn, Name: this.name, RoleArn: this.machine.roleArn },
      StateMachine: { Id: this.machine.arn, Name: this.machine.name },
      // A getter, because the library evaluates `$$.Task.Token` through jsonpath-plus, which reads it afresh
      // for each Task state; aws-local-stepfunctions itself has no notion of task tokens.
      Task: {
        get Token(): string {
          return mint();
        },
      },
    };
    let run: LibraryRun;
    try {
      run = engine.run(JSON.parse(this.input), {
        overrides: { taskResourceLocalHandlers: handlers as never },
        context,
      });
    } catch (error) {
      this.end({ ok: false, error });
      return;
    }
    this.abortLibraryRun = run.abort;
    const seconds = prepared.timeoutSeconds;
    if (seconds !== undefined && seconds <= MAX_TIMER_SECONDS) {
      this.timeoutTimer = setTimeout(
        () => this.halt('TIMED_OUT', 'States.Timeout', `The execution timed out after ${seconds} s`),
        seconds * 1000,
      );
    }
    // The library's event log is drained concurrently and completely before the final event is written.
    const drained = (async () => {
      for await (const event of run.eventLogs) this.history.addLibraryEvent(event);
    })().catch(() => {
      // History is a record, not control flow: a malformed library event must not keep the execution open.
    });
    let settled: Settled;
    try {
      settled = { ok: true, value: await run.result };
    } catch (error) {
      settled = { ok: false, error };
    }
    await drained;
    this.end(settled);
  }

  private end(settled: Settled): void {
    this.cleanUp();
    if (this.running) {
      this.stopDate = Date.now();
      if (settled.ok) {
        this.status = 'SUCCEEDED';
        this.output = JSON.stringify(toJson(settled.value));
      } else {
        this.status = 'FAILED';
        const { error, cause } = failureOf(settled.error);
        this.error = error;
        this.cause = cause;
      }
    }
    const details = { error: this.error, cause: this.cause };
    switch (this.status) {
      case 'SUCCEEDED':
        this.history.close('ExecutionSucceeded', { output: this.output });
        break;
      case 'FAILED':
        this.history.close('ExecutionFailed', details);
        break;
      case 'TIMED_OUT':
        this.history.close('ExecutionTimedOut', details);
        break;
      default:
        this.history.close('ExecutionAborted', details);
    }
  }

  private cleanUp(): void {
    if (this.timeoutTimer) clearTimeout(this.timeoutTimer);
    this.timeoutTimer = undefined;
    if (this.pendingToken) this.tokens.retire(this.pendingToken, 'closed');
    this.pendingToken = undefined;
    this.tokens.retireExecution(this.executionArn);
  }

  /** Ends a running execution from outside (StopExecution, the execution timeout, server shutdown). */
  private halt(status: 'ABORTED' | 'TIMED_OUT', error: string | undefined, cause: string | undefined): void {
    if (!this.running) return;
    this.status = status;
    this.stopDate = Date.now();
    this.error = error;
    this.cause = cause;
    // Abort the library first so that no further state starts, then end the waiting attempts.
    this.abortLibraryRun();
    for (const run of this.runs) {
      run.fail({ kind: 'aborted', error: ABORTED_ERROR, cause: 'The execution was stopped' });
    }
    this.cleanUp();
  }

  /** StopExecution: ABORTED with the given error and cause; no-op once the execution has ended. */
  stop(error: string | undefined, cause: string | undefined): void {
    this.halt('ABORTED', error, cause);
  }
}
