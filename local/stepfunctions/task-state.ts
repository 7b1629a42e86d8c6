/**
 * The local handler behind every Task state: aws-local-stepfunctions calls it with the (wrapped) effective
 * parameters, and it runs the resource, the task token, the timeouts and the heartbeat clock, writes the Task
 * history events, and resolves with the task result or throws a {@link TaskError} named as AWS would name it.
 */

import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { type TaskSpec, unwrapTaskInput } from './definition.ts';
import { abortedError, runtimeError, TaskError } from './errors.ts';
import type { History } from './history.ts';
import type { Json } from './json.ts';
import { resolveSeconds } from './json-path.ts';
import { callResource, describeResource, type ResourceClients } from './resources.ts';
import { type TaskOutcome, TaskRun } from './task-run.ts';
import { outcomeReason, type TokenRegistry } from './tokens.ts';

/** What a Task state needs from the execution that runs it. */
export interface TaskHost {
  readonly executionArn: string;
  readonly region: string;
  readonly running: boolean;
  readonly history: History;
  readonly tokens: TokenRegistry;
  readonly clients: ResourceClients;
  /** Takes the token minted by this state's `$$.Task.Token`, if `params` carries it. */
  claimToken(params: Json): string | undefined;
  /** Registers an attempt so that StopExecution can abort it. */
  track(run: TaskRun): void;
  untrack(run: TaskRun): void;
}

/** Writes the Task* (or LambdaFunction* for a bare function ARN) history events of one attempt. */
class TaskEvents {
  private readonly lambdaArn: string | undefined;
  private readonly names: { resourceType: string; resource: string };

  constructor(
    private readonly history: History,
    spec: TaskSpec,
  ) {
    this.lambdaArn = spec.resource.kind === 'lambdaFunction' ? spec.resource.arn : undefined;
    this.names = describeResource(spec.resource);
  }

  scheduled(
    region: string,
    params: Json,
    timeoutSeconds: number | undefined,
    heartbeatSeconds: number | undefined,
  ) {
    const parameters = JSON.stringify(params);
    if (this.lambdaArn) {
      this.history.add('LambdaFunctionScheduled', {
        resource: this.lambdaArn,
        input: parameters,
        timeoutInSeconds: timeoutSeconds,
      });
    } else {
      this.history.add('TaskScheduled', {
        ...this.names,
        region,
        parameters,
        timeoutInSeconds: timeoutSeconds,
        heartbeatInSeconds: heartbeatSeconds,
      });
    }
  }

  started() {
    if (this.lambdaArn) this.history.add('LambdaFunctionStarted');
    else this.history.add('TaskStarted', this.names);
  }

  submitted(output: Json) {
    this.history.add('TaskSubmitted', { ...this.names, output: JSON.stringify(output) });
  }

  ended(outcome: TaskOutcome) {
    const prefix = this.lambdaArn ? 'LambdaFunction' : 'Task';
    const names = this.lambdaArn ? {} : this.names;
    if (outcome.ok) {
      this.history.add(`${prefix}Succeeded`, { ...names, output: JSON.stringify(outcome.value) });
      return;
    }
    const { kind, error, cause } = outcome.failure;
    if (kind === 'aborted') return; // AWS ends an aborted task silently: ExecutionAborted says it all.
    this.history.add(kind === 'timedOut' ? `${prefix}TimedOut` : `${prefix}Failed`, {
      ...names,
      error,
      cause,
    });
  }
}

/**
 * Runs one attempt of a Task state.
 * @param wrapped - what the rewritten Parameters evaluated to (see definition.ts)
 */
export async function runTaskState(host: TaskHost, spec: TaskSpec, wrapped: unknown): Promise<Json> {
  const { input, params } = unwrapTaskInput(spec, wrapped);
  // Must happen in the same synchronous turn as the Parameters evaluation that minted the token: the library
  // calls this handler right after evaluating Parameters, so no other state can have minted one in between.
  const claimed = host.claimToken(params);
  // The library reports TaskStateEntered through an async event stream; one macrotask lets the execution's
  // history catch up, so that TaskScheduled follows TaskStateEntered as in AWS.
  await nextMacrotask();
  const retireClaimed = () => {
    if (claimed) host.tokens.retire(claimed, 'closed');
  };
  if (!host.running) {
    retireClaimed();
    throw abortedError();
  }

  const waitForTaskToken = spec.resource.waitForTaskToken;
  let timeoutSeconds: number | undefined;
  let heartbeatSeconds: number | undefined;
  try {
    timeoutSeconds = resolveSeconds(
      spec.timeoutSeconds,
      spec.timeoutSecondsPath,
      'TimeoutSecondsPath',
      input,
    );
    // Only callback tasks can send heartbeats, so only they have a heartbeat clock.
    heartbeatSeconds = waitForTaskToken
      ? resolveSeconds(spec.heartbeatSeconds, spec.heartbeatSecondsPath, 'HeartbeatSecondsPath', input)
      : undefined;
  } catch (error) {
    retireClaimed();
    throw error;
  }

  const events = new TaskEvents(host.history, spec);
  events.scheduled(host.region, params, timeoutSeconds, heartbeatSeconds);
  const run = new TaskRun({ timeoutSeconds, heartbeatSeconds });
  let token: string | undefined;
  if (waitForTaskToken) {
    // Without `$$.Task.Token` in its Parameters nobody can answer the task; AWS then waits for the timeout.
    token = claimed ?? host.tokens.issue(host.executionArn);
    // Bound before the resource is called: the worker may answer before the invocation returns.
    host.tokens.bind(token, run);
  } else {
    retireClaimed();
  }
  host.track(run);
  events.started();
  run.start();

  // The resource error that failed the attempt, rethrown as is to keep States.Runtime uncatchable.
  let resourceError: TaskError | undefined;
  callResource(host.clients, spec.resource, params).then(
    (result) => {
      if (!waitForTaskToken) run.succeed(result);
      else if (!run.settled) events.submitted(result);
    },
    (thrown: unknown) => {
      const error = thrown instanceof TaskError ? thrown : runtimeError(String(thrown));
      if (run.fail({ kind: 'failed', error: error.name, cause: error.message })) resourceError = error;
    },
  );

  const outcome = await run.done;
  host.untrack(run);
  if (token) host.tokens.retire(token, outcomeReason(outcome));
  events.ended(outcome);
  if (outcome.ok) return outcome.value;
  if (outcome.failure.kind === 'aborted') throw abortedError();
  throw resourceError ?? new TaskError(outcome.failure.error, outcome.failure.cause);
}
