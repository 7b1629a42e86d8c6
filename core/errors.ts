/**
 * Typed errors, named after RP's `exceptions.py`, with a stable `code` and an HTTP status decided here
 * once. The API turns them into `{error: {code, message}}` with {@link toWire}; the SDK turns a response
 * back into the same class with {@link fromWire}, so `catch (e) { if (e instanceof DoesNotExist) … }`
 * works on both sides of the wire.
 */

/** Stable error codes: the wire contract between the API and the SDK. */
export type ErrorCode =
  | 'PilotException'
  | 'DatabaseError'
  | 'IncorrectURL'
  | 'BadParameter'
  | 'DoesNotExist'
  | 'IncorrectState'
  | 'Timeout'
  | 'PermissionDenied'
  | 'AuthorizationFailed'
  | 'AuthenticationFailed'
  | 'NoSuccess'
  | 'NotImplemented'
  | 'Throttled';

/** Options every Sortie error takes: the chained cause and, like RP's `get_object()`, the uid concerned. */
export interface PilotExceptionOptions extends ErrorOptions {
  /** uid of the object the error is about (pilot, unit, manager or session). */
  obj?: string;
}

/** Base of all Sortie errors (RP `PilotException`). */
export class PilotException extends Error {
  readonly code: ErrorCode = 'PilotException';
  /** uid of the object the error is about, if any. */
  readonly obj: string | undefined;

  constructor(message: string, options: PilotExceptionOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.obj = options.obj;
  }

  /** HTTP status this error maps to (see {@link httpStatusOf}). */
  get httpStatus(): number {
    return STATUS[this.code];
  }

  /** RP's `get_object()`: the uid of the object the error is about, if any. */
  getObject(): string | undefined {
    return this.obj;
  }

  /** RP's `get_message()`: the message alone, without the class name. */
  getMessage(): string {
    return this.message;
  }
}

/** The database could not be reached or refused the request (throttled, unavailable); a retry may help. */
export class DatabaseError extends PilotException {
  override readonly code = 'DatabaseError';
}
/** A URL (an endpoint, a resource's job manager or file system address) is malformed or of an unknown scheme. */
export class IncorrectURL extends PilotException {
  override readonly code = 'IncorrectURL';
}
/** A parameter or description is invalid. */
export class BadParameter extends PilotException {
  override readonly code = 'BadParameter';
}
/** The session, manager, pilot or unit does not exist. */
export class DoesNotExist extends PilotException {
  override readonly code = 'DoesNotExist';
}

/** The object is not in a state that allows the operation; carries the record as it was found. */
export class IncorrectState<R = unknown> extends PilotException {
  override readonly code = 'IncorrectState';
  /** The current record (e.g. the unit whose state refused a transition), when known. */
  readonly current: R | undefined;

  constructor(message: string, options: PilotExceptionOptions & { current?: R } = {}) {
    super(message, options);
    this.current = options.current;
  }
}

/** An operation (a wait, an upstream call) did not complete in time. */
export class Timeout extends PilotException {
  override readonly code = 'Timeout';
}
/** The caller is known but not allowed to do this. */
export class PermissionDenied extends PilotException {
  override readonly code = 'PermissionDenied';
}
/** The credentials were accepted but do not authorize this operation (RP keeps it beside PermissionDenied). */
export class AuthorizationFailed extends PilotException {
  override readonly code = 'AuthorizationFailed';
}
/** The caller's credentials (session token, pilot secret) are missing or wrong. */
export class AuthenticationFailed extends PilotException {
  override readonly code = 'AuthenticationFailed';
}
/** The operation failed for a reason no other class describes. */
export class NoSuccess extends PilotException {
  override readonly code = 'NoSuccess';
}
/** The operation exists in RP's API but not in this release (e.g. `pilot.unitManagers`, as in RP 0.22). */
export class NotImplemented extends PilotException {
  override readonly code = 'NotImplemented';
}
/** A limit of the deployment was reached (e.g. pilots created per minute); the message names it. Not in RP. */
export class Throttled extends PilotException {
  override readonly code = 'Throttled';
}

/**
 * The one mapping from error code to HTTP status.
 * - DatabaseError 503: the store is unavailable or throttled; the request itself was fine and may be retried.
 * - IncorrectURL 400: a malformed URL is bad input like any other.
 * - AuthorizationFailed 403, beside PermissionDenied (a 403 without a Sortie body reads back as PermissionDenied).
 * - NotImplemented 501: what RP names but Sortie has not built; only the SDK raises it (the API refuses unbuilt
 *   options with BadParameter, a 4xx).
 * - Timeout 504, not 408: 408 says the *client* was too slow sending its request (and proxies may drop the
 *   connection or replay it); here the server gave up waiting on something upstream (DynamoDB, a batch
 *   system, an agent), which is what 504 means.
 * - Throttled 429: a per-session limit; the SDK retries 429 within its retry budget, as it does API Gateway's.
 */
const STATUS: Readonly<Record<ErrorCode, number>> = {
  PilotException: 500,
  DatabaseError: 503,
  BadParameter: 400,
  IncorrectURL: 400,
  DoesNotExist: 404,
  IncorrectState: 409,
  Timeout: 504,
  PermissionDenied: 403,
  AuthorizationFailed: 403,
  AuthenticationFailed: 401,
  NoSuccess: 500,
  NotImplemented: 501,
  Throttled: 429,
};

const CLASSES: Readonly<
  Record<ErrorCode, new (message: string, options?: PilotExceptionOptions) => PilotException>
> = {
  PilotException,
  DatabaseError,
  IncorrectURL,
  BadParameter,
  DoesNotExist,
  IncorrectState,
  Timeout,
  PermissionDenied,
  AuthorizationFailed,
  AuthenticationFailed,
  NoSuccess,
  NotImplemented,
  Throttled,
};

/** HTTP status of any thrown value: a Sortie error's own status, 500 for anything else. */
export function httpStatusOf(err: unknown): number {
  return err instanceof PilotException ? STATUS[err.code] : 500;
}

/** The error body the API sends. */
export interface WireError {
  error: { code: ErrorCode; message: string; obj?: string };
}

/**
 * Error → response body. Sortie errors keep their message (written for the user); anything else is
 * an unexpected bug whose message may leak internals, so it becomes a generic NoSuccess.
 */
export function toWire(err: unknown): WireError {
  if (!(err instanceof PilotException)) return { error: { code: 'NoSuccess', message: 'internal error' } };
  const body: WireError = { error: { code: err.code, message: err.message } };
  if (err.obj !== undefined) body.error.obj = err.obj;
  return body;
}

/**
 * Response status and body → the matching error class. The body's code decides; a body that is not
 * a Sortie error (e.g. from API Gateway itself) falls back to the class of the status.
 */
export function fromWire(status: number, body: unknown): PilotException {
  const wire = readWire(body);
  if (wire) {
    const options: PilotExceptionOptions = wire.obj === undefined ? {} : { obj: wire.obj };
    return new CLASSES[wire.code](wire.message, options);
  }
  const message = `HTTP ${status}${typeof body === 'string' && body ? `: ${body}` : ''}`;
  return new (classOfStatus(status))(message);
}

function readWire(body: unknown): WireError['error'] | undefined {
  if (typeof body !== 'object' || body === null || !('error' in body)) return undefined;
  const e: unknown = body.error;
  if (typeof e !== 'object' || e === null || !('code' in e) || !('message' in e)) return undefined;
  if (typeof e.code !== 'string' || !(e.code in CLASSES) || typeof e.message !== 'string') return undefined;
  const obj = 'obj' in e && typeof e.obj === 'string' ? e.obj : undefined;
  return { code: e.code as ErrorCode, message: e.message, ...(obj === undefined ? {} : { obj }) };
}

function classOfStatus(status: number): new (message: string) => PilotException {
  if (status === 500) return NoSuccess;
  const code = (Object.keys(STATUS) as ErrorCode[]).find(
    (c) => c !== 'PilotException' && STATUS[c] === status,
  );
  if (code) return CLASSES[code];
  if (status === 408) return Timeout;
  return status >= 500 ? NoSuccess : BadParameter;
}
