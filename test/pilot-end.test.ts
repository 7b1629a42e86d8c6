/**
 * The finalize decision (core/pilot-end.ts): for every way a pilot's state machine can end, the final
 * state and the reason the user reads in the pilot's log.
 */
import { describe, expect, it } from 'vitest';
import { CANCELED_ERROR, decidePilotEnd } from '../core/pilot-end.ts';
import { PilotState } from '../core/states.ts';

const { ACTIVE, CANCELED, DONE, FAILED, PENDING_ACTIVE } = PilotState;

/** A Lambda error's Cause, as Step Functions passes it: the error serialized as JSON. */
const lambdaCause = (errorMessage: string) =>
  JSON.stringify({ errorType: 'Error', errorMessage, trace: ['at x'] });

describe('decidePilotEnd: the agent said how it ended', () => {
  it('DONE at walltime stays DONE with the agent reason', () => {
    expect(decidePilotEnd({ outcome: { state: DONE, reason: 'walltime reached' } }, ACTIVE, 60)).toEqual({
      state: DONE,
      reason: 'walltime reached',
    });
  });

  it('any other outcome state is FAILED (an agent cannot end itself CANCELED or ACTIVE)', () => {
    for (const state of [FAILED, CANCELED, ACTIVE, 'Bogus', undefined]) {
      expect(
        decidePilotEnd({ outcome: { ...(state ? { state } : {}), reason: 'r' } }, ACTIVE, 60).state,
        String(state),
      ).toBe(FAILED);
    }
  });

  it('an outcome without a reason says the agent ended', () => {
    expect(decidePilotEnd({ outcome: { state: DONE } }, ACTIVE, 60)).toEqual({
      state: DONE,
      reason: 'agent ended',
    });
  });

  it('an outcome wins over an error passed beside it', () => {
    const ev = { outcome: { state: DONE, reason: 'ok' }, error: { Error: CANCELED_ERROR } };
    expect(decidePilotEnd(ev, ACTIVE, 60).state).toBe(DONE);
  });
});

describe('decidePilotEnd: the state machine caught an error', () => {
  it('a cancel is CANCELED, with the Lambda error message as the reason', () => {
    expect(
      decidePilotEnd(
        { error: { Error: CANCELED_ERROR, Cause: lambdaCause('cancelled by user') } },
        ACTIVE,
        60,
      ),
    ).toEqual({ state: CANCELED, reason: 'cancelled by user' });
  });

  it('a cancel without a cause still reads "cancelled"', () => {
    expect(decidePilotEnd({ error: { Error: CANCELED_ERROR } }, PENDING_ACTIVE, 60)).toEqual({
      state: CANCELED,
      reason: 'cancelled',
    });
  });

  it('a missed heartbeat is FAILED naming the budget of this deployment', () => {
    const out = decidePilotEnd(
      { error: { Error: 'States.HeartbeatTimeout', Cause: 'No heartbeat received for 7 s' } },
      ACTIVE,
      7,
    );
    expect(out.state).toBe(FAILED);
    expect(out.reason).toBe('agent lost: no heartbeat for 7 s (agent killed, node lost or network cut)');
  });

  it.each(['Sortie.JobEnded', 'Sortie.ActivationTimeout', 'Sortie.LaunchFailed'])(
    '%s is FAILED with its own message (JSON cause unwrapped, plain cause kept, none → the name)',
    (name) => {
      expect(
        decidePilotEnd(
          { error: { Error: name, Cause: lambdaCause('job 42 ended: OOM') } },
          PENDING_ACTIVE,
          60,
        ),
      ).toEqual({ state: FAILED, reason: 'job 42 ended: OOM' });
      expect(decidePilotEnd({ error: { Error: name, Cause: 'not json {' } }, PENDING_ACTIVE, 60)).toEqual({
        state: FAILED,
        reason: 'not json {',
      });
      expect(decidePilotEnd({ error: { Error: name } }, PENDING_ACTIVE, 60)).toEqual({
        state: FAILED,
        reason: name,
      });
    },
  );

  it('a JSON cause without errorMessage is shown as it came', () => {
    const cause = JSON.stringify({ detail: 'x' });
    expect(decidePilotEnd({ error: { Error: 'Sortie.JobEnded', Cause: cause } }, ACTIVE, 60).reason).toBe(
      cause,
    );
  });

  it('States.Timeout while ACTIVE is a walltime overrun; before ACTIVE, an agent that never activated', () => {
    expect(decidePilotEnd({ error: { Error: 'States.Timeout' } }, ACTIVE, 60)).toEqual({
      state: FAILED,
      reason: 'agent did not end at its walltime',
    });
    expect(decidePilotEnd({ error: { Error: 'States.Timeout' } }, PENDING_ACTIVE, 60)).toEqual({
      state: FAILED,
      reason: 'agent did not become active in time (pilot was PendingActive)',
    });
  });

  it('an unknown error is FAILED naming the error and its cause', () => {
    expect(
      decidePilotEnd(
        { error: { Error: 'Lambda.ServiceException', Cause: lambdaCause('throttled') } },
        ACTIVE,
        60,
      ),
    ).toEqual({ state: FAILED, reason: 'Lambda.ServiceException: throttled' });
    expect(decidePilotEnd({ error: { Error: 'States.Runtime' } }, ACTIVE, 60)).toEqual({
      state: FAILED,
      reason: 'States.Runtime',
    });
  });

  it('neither outcome nor error is FAILED "Unknown"', () => {
    expect(decidePilotEnd({}, ACTIVE, 60)).toEqual({ state: FAILED, reason: 'Unknown' });
    expect(decidePilotEnd({ error: {} }, ACTIVE, 60)).toEqual({ state: FAILED, reason: 'Unknown' });
  });
});
