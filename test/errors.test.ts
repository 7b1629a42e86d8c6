import { describe, expect, it } from 'vitest';
import {
  AuthenticationFailed,
  AuthorizationFailed,
  BadParameter,
  DatabaseError,
  DoesNotExist,
  fromWire,
  httpStatusOf,
  IncorrectState,
  IncorrectURL,
  NoSuccess,
  NotImplemented,
  PermissionDenied,
  PilotException,
  Throttled,
  Timeout,
  toWire,
} from '../core/errors.ts';

const table = [
  [DatabaseError, 'DatabaseError', 503],
  [BadParameter, 'BadParameter', 400],
  [DoesNotExist, 'DoesNotExist', 404],
  [IncorrectState, 'IncorrectState', 409],
  [Timeout, 'Timeout', 504],
  [PermissionDenied, 'PermissionDenied', 403],
  [AuthenticationFailed, 'AuthenticationFailed', 401],
  [NoSuccess, 'NoSuccess', 500],
  [IncorrectURL, 'IncorrectURL', 400],
  [AuthorizationFailed, 'AuthorizationFailed', 403],
  [NotImplemented, 'NotImplemented', 501],
  [Throttled, 'Throttled', 429],
] as const;

describe('errors', () => {
  it.each(table)('%o has code %s and status %i, and survives the wire', (Cls, code, status) => {
    // Prepare
    const err = new Cls('boom', { obj: 'unit.000003' });
    // Assess
    expect(err).toBeInstanceOf(PilotException);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe(code);
    expect(err.code).toBe(code);
    expect(err.httpStatus).toBe(status);
    expect(httpStatusOf(err)).toBe(status);
    expect(err.obj).toBe('unit.000003');
    expect(err.getObject()).toBe('unit.000003');
    expect(err.getMessage()).toBe('boom');
    const body = toWire(err);
    expect(body).toEqual({ error: { code, message: 'boom', obj: 'unit.000003' } });
    const back = fromWire(status, JSON.parse(JSON.stringify(body)));
    expect(back).toBeInstanceOf(Cls);
    expect(back.message).toBe('boom');
    expect(back.obj).toBe('unit.000003');
  });

  it('chains the cause', () => {
    const cause = new Error('socket hang up');
    const err = new DatabaseError('store unavailable', { cause });
    expect(err.cause).toBe(cause);
    expect(new BadParameter('x').cause).toBeUndefined();
  });

  it('IncorrectState carries the current record', () => {
    const err = new IncorrectState('unit is final', { current: { state: 'Done' }, obj: 'unit.000001' });
    expect(err.current).toEqual({ state: 'Done' });
  });

  it('hides the message of foreign errors', () => {
    expect(httpStatusOf(new TypeError('x is undefined'))).toBe(500);
    expect(httpStatusOf('oops')).toBe(500);
    expect(toWire(new TypeError('x is undefined'))).toEqual({
      error: { code: 'NoSuccess', message: 'internal error' },
    });
  });

  it('omits obj when there is none', () => {
    expect(toWire(new DoesNotExist('no such session'))).toEqual({
      error: { code: 'DoesNotExist', message: 'no such session' },
    });
  });

  it.each([
    [404, DoesNotExist],
    [401, AuthenticationFailed],
    [403, PermissionDenied],
    [409, IncorrectState],
    [408, Timeout],
    [504, Timeout],
    [503, DatabaseError],
    [502, NoSuccess],
    [500, NoSuccess],
    [422, BadParameter],
  ] as const)('falls back to the status class for a foreign body (%i)', (status, Cls) => {
    const err = fromWire(status, { message: 'Internal Server Error' });
    expect(err).toBeInstanceOf(Cls);
    expect(err.message).toContain(String(status));
  });

  it('ignores an unknown code', () => {
    expect(fromWire(400, { error: { code: 'Nope', message: 'm' } })).toBeInstanceOf(BadParameter);
  });
});
