/**
 * The agent's report batching, on a manual clock and a recording `states` call: which reports travel
 * together decides how many DynamoDB writes a unit costs (Executing and Done in one call are one write)
 * and how soon a lone unit's end is seen. The real HTTP path is covered by the end-to-end suites.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AgentApi, UnitReport } from '../agent/api.ts';
import { MAX_BATCH_BYTES, Reporter } from '../agent/reporter.ts';

const report = (uid: string, state: UnitReport['state']): UnitReport => ({
  uid,
  state,
  time: new Date(0).toISOString(),
});

/** A `states` call that records each batch and answers after `delayMs` (fake timers). */
function recorder(delayMs = 5) {
  const calls: string[][] = [];
  const api = {
    states: (batch: UnitReport[]) => {
      calls.push(batch.map((r) => `${r.uid}:${r.state}`));
      return new Promise<{ applied: number; refused: number }>((resolve) =>
        setTimeout(() => resolve({ applied: batch.length, refused: 0 }), delayMs),
      );
    },
  } as unknown as AgentApi;
  return { api, calls };
}

describe('Reporter', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends an idle agent’s final report at once, with the Executing still pending: one call', async () => {
    vi.useFakeTimers();
    const { api, calls } = recorder();
    const r = new Reporter(api, 100, 500, undefined, () => Date.now());
    r.report(report('unit.0', 'Executing'));
    expect(calls).toEqual([]);
    r.report(report('unit.0', 'Done'));
    expect(calls).toEqual([['unit.0:Executing', 'unit.0:Done']]);
    await vi.advanceTimersByTimeAsync(500);
    expect(calls).toHaveLength(1);
    expect(r.sent).toBe(2);
  });

  it('keeps batching while busy: a final report within an interval of the last send waits for the timer', async () => {
    vi.useFakeTimers();
    const { api, calls } = recorder();
    const r = new Reporter(api, 100, 500, undefined, () => Date.now());
    r.report(report('unit.0', 'Done')); // idle: out at once
    await vi.advanceTimersByTimeAsync(10);
    r.report(report('unit.1', 'Executing'));
    r.report(report('unit.1', 'Done')); // 10 ms after a send: batched
    r.report(report('unit.2', 'Failed'));
    expect(calls).toEqual([['unit.0:Done']]);
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toEqual([['unit.0:Done'], ['unit.1:Executing', 'unit.1:Done', 'unit.2:Failed']]);
  });

  it('sends a final report at once when the agent is quiet, even right after a send', async () => {
    vi.useFakeTimers();
    const { api, calls } = recorder();
    let running = 1;
    const r = new Reporter(
      api,
      100,
      500,
      undefined,
      () => Date.now(),
      () => running === 0,
    );
    r.report(report('unit.0', 'Done')); // nothing sent yet: out at once
    await vi.advanceTimersByTimeAsync(10);
    r.report(report('unit.1', 'Executing'));
    running = 0; // unit.1 exits, nothing else runs or waits
    r.report(report('unit.1', 'Done'));
    expect(calls).toEqual([['unit.0:Done'], ['unit.1:Executing', 'unit.1:Done']]);
  });

  it('sends non-final reports after the interval, a full batch at once, and one call at a time in order', async () => {
    vi.useFakeTimers();
    const { api, calls } = recorder(50);
    const r = new Reporter(api, 100, 3, undefined, () => Date.now());
    r.report(report('unit.0', 'Executing'));
    await vi.advanceTimersByTimeAsync(99);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual([['unit.0:Executing']]);
    // A full batch while the first call is in flight waits for it, then goes without waiting for the timer.
    for (const uid of ['unit.1', 'unit.2', 'unit.3']) r.report(report(uid, 'Executing'));
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(50);
    expect(calls).toEqual([
      ['unit.0:Executing'],
      ['unit.1:Executing', 'unit.2:Executing', 'unit.3:Executing'],
    ]);
    const closed = r.close();
    await vi.advanceTimersByTimeAsync(50);
    await closed;
    expect(r.sent).toBe(4);
  });

  it('cuts batches by size as well as by count: output tails must not exceed a request', async () => {
    vi.useFakeTimers();
    const { api, calls } = recorder();
    const r = new Reporter(api, 100, 500, undefined, () => Date.now());
    const tail = 'x'.repeat(64 * 1024);
    // 100 reports with two 64 KiB tails each: ~12.8 MB, over any API request limit in one batch.
    for (let i = 0; i < 100; i++) r.report({ ...report(`unit.${i}`, 'Done'), stdout: tail, stderr: tail });
    const closed = r.close();
    await vi.runAllTimersAsync();
    await closed;
    expect(calls.flat()).toHaveLength(100);
    expect(calls.length).toBeGreaterThanOrEqual(Math.ceil((100 * 2 * 64 * 1024) / MAX_BATCH_BYTES));
    for (const c of calls) expect(c.length * 2 * 64 * 1024).toBeLessThanOrEqual(MAX_BATCH_BYTES);
  });
});
