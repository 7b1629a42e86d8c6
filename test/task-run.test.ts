/**
 * One Task attempt of the embedded Step Functions (local/stepfunctions/task-run.ts) on a fake clock: the
 * heartbeat and timeout rules decided exactly, with no dependence on how loaded the machine is. (The
 * suite in local-stepfunctions.test.ts drives the same rules through the server with real time.)
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_SECONDS } from '../local/stepfunctions/definition.ts';
import { TaskRun } from '../local/stepfunctions/task-run.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('TaskRun', () => {
  it('heartbeats keep a task alive far past HeartbeatSeconds; it then succeeds', async () => {
    const run = new TaskRun({ timeoutSeconds: undefined, heartbeatSeconds: 1 });
    run.start();
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(900);
      run.heartbeat();
    }
    expect(run.settled).toBeUndefined();
    expect(run.succeed({ ok: 1 })).toBe(true);
    expect(await run.done).toEqual({ ok: true, value: { ok: 1 } });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a heartbeat that comes too late finds the task failed with States.HeartbeatTimeout', async () => {
    const run = new TaskRun({ timeoutSeconds: undefined, heartbeatSeconds: 2 });
    run.start();
    vi.advanceTimersByTime(1_999);
    expect(run.settled).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(await run.done).toEqual({
      ok: false,
      failure: { kind: 'timedOut', error: 'States.HeartbeatTimeout', cause: 'No heartbeat received for 2 s' },
    });
    run.heartbeat(); // ignored: the attempt has ended and re-arms nothing
    expect(vi.getTimerCount()).toBe(0);
    expect(run.succeed('late')).toBe(false);
  });

  it('heartbeats do not extend TimeoutSeconds: the task fails with States.Timeout at its bound', async () => {
    const run = new TaskRun({ timeoutSeconds: 3, heartbeatSeconds: 1 });
    run.start();
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(600);
      run.heartbeat();
    }
    expect(await run.done).toEqual({
      ok: false,
      failure: { kind: 'timedOut', error: 'States.Timeout', cause: 'Task timed out after 3 s' },
    });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('settles once: the first of success, failure, timeout or abort wins and clears every timer', async () => {
    const run = new TaskRun({ timeoutSeconds: 10, heartbeatSeconds: 5 });
    run.start();
    expect(vi.getTimerCount()).toBe(2);
    expect(run.fail({ kind: 'aborted', error: 'States.Aborted', cause: 'stopped' })).toBe(true);
    expect(run.succeed('after')).toBe(false);
    expect(run.fail({ kind: 'failed', error: 'X', cause: 'y' })).toBe(false);
    vi.advanceTimersByTime(60_000);
    expect(await run.done).toEqual({
      ok: false,
      failure: { kind: 'aborted', error: 'States.Aborted', cause: 'stopped' },
    });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('start() after the attempt settled arms nothing (a task answered before it started)', () => {
    const run = new TaskRun({ timeoutSeconds: 1, heartbeatSeconds: 1 });
    expect(run.succeed('early')).toBe(true);
    run.start();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('no timers without bounds, and none for a bound beyond what setTimeout can hold', () => {
    new TaskRun({ timeoutSeconds: undefined, heartbeatSeconds: undefined }).start();
    new TaskRun({ timeoutSeconds: MAX_TIMER_SECONDS + 1, heartbeatSeconds: MAX_TIMER_SECONDS + 1 }).start();
    expect(vi.getTimerCount()).toBe(0);
    new TaskRun({ timeoutSeconds: MAX_TIMER_SECONDS, heartbeatSeconds: undefined }).start();
    expect(vi.getTimerCount()).toBe(1);
  });
});
