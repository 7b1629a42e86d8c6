/**
 * Two kinds of error live here: errors the API returns to SDK callers (`ApiError`, serialised as
 * `{__type, message}`), and errors thrown into aws-local-stepfunctions to fail a Task state (`TaskError`),
 * whose `name` is what Retry/Catch match on and whose `message` becomes the `Cause`.
 */

/** An error answered to the API caller. `type` is the SDK exception name (`TaskDoesNotExist`, ...). */
export class ApiError extends Error {
  /**
   * @param type - exception name the SDK maps to its exception class
   * @param message - human-readable explanation
   * @param status - HTTP status: 400 for client errors, 500 for faults of this server
   */
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = type;
  }
}

/** Options of a {@link TaskError}. */
export interface TaskErrorOptions {
  /** False for errors that Retry must not match (States.Runtime, aborts). Default true. */
  retryable?: boolean;
  /** False for errors that Catch must not match (States.Runtime, aborts). Default true. */
  catchable?: boolean;
}

/**
 * An error that fails a Task state. aws-local-stepfunctions matches Retry/Catch on `name`, uses `message`
 * as the Catch output's `Cause`, and reads the `isRetryable`/`isCatchable` getters of its own RuntimeError
 * class, which this mirrors so that States.Runtime stays uncatchable as in AWS.
 */
export class TaskError extends Error {
  readonly isRetryable: boolean;
  readonly isCatchable: boolean;

  /**
   * @param error - error name (`States.Timeout`, `Sortie.Canceled`, a Lambda errorType, ...)
   * @param cause - the cause string
   */
  constructor(error: string, cause: string, options: TaskErrorOptions = {}) {
    super(cause);
    this.name = error;
    this.isRetryable = options.retryable ?? true;
    this.isCatchable = options.catchable ?? true;
  }
}

/** A States.Runtime error: fails the execution, ignored by Retry and Catch (as in AWS). */
export function runtimeError(cause: string): TaskError {
  return new TaskError('States.Runtime', cause, { retryable: false, catchable: false });
}

/** Marks the task of an execution that was stopped; nothing may retry or catch it. */
export const ABORTED_ERROR = 'Sortie.LocalExecutionAborted';

/** Error thrown into a Task state whose execution was stopped, timed out or shut down. */
export function abortedError(): TaskError {
  return new TaskError(ABORTED_ERROR, 'The execution was stopped', { retryable: false, catchable: false });
}

/** The name and cause that a failed task reports, in the shape of history events and Catch output. */
export interface TaskFailureInfo {
  error: string;
  cause: string;
}

/**
 * Converts what `invokeLambda` rejected with into the error and cause Step Functions reports for a failed
 * Lambda: the error is the Lambda `errorType` (the JS error's `name`), the cause is the JSON error document
 * the Node.js Lambda runtime returns (`{"errorType","errorMessage","trace"}`), exactly as in AWS.
 */
export function lambdaFailure(thrown: unknown): TaskFailureInfo {
  if (thrown instanceof Error) {
    const errorType = thrown.name || 'Error';
    const trace = (thrown.stack ?? '').split('\n').filter((line) => line.length > 0);
    return {
      error: errorType,
      cause: JSON.stringify({ errorType, errorMessage: thrown.message, trace }),
    };
  }
  const errorMessage = typeof thrown === 'string' ? thrown : JSON.stringify(thrown ?? null);
  return { error: 'Error', cause: JSON.stringify({ errorType: 'Error', errorMessage, trace: [] }) };
}
