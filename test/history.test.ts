/**
 * The compact state history (store/records.ts): one `"A,B@<epoch ms>"` step per write, decoded into the
 * wire's list of {state, time}; and stripKeys, which turns a table item into the record the API returns.
 */
import { describe, expect, it } from 'vitest';
import { decodeHistory, HISTORY, historyStep, stripKeys } from '../store/records.ts';

const T1 = '2026-12-04T10:00:00.000Z';
const T2 = '2026-12-04T10:00:01.250Z';

describe('historyStep', () => {
  it('writes the states a write enters, comma-joined, at the epoch milliseconds of its time', () => {
    expect(historyStep(['Executing'], T1)).toBe(`Executing@${Date.parse(T1)}`);
    expect(historyStep(['PendingOutputStaging', 'StagingOutput', 'Done'], T2)).toBe(
      `PendingOutputStaging,StagingOutput,Done@${Date.parse(T2)}`,
    );
  });
});

describe('decodeHistory', () => {
  it('round-trips what historyStep wrote, every state of a step at its time, steps in order', () => {
    const steps = [historyStep(['New', 'Unscheduled'], T1), historyStep(['Executing', 'Done'], T2)];
    expect(decodeHistory(steps)).toEqual([
      { state: 'New', time: T1 },
      { state: 'Unscheduled', time: T1 },
      { state: 'Executing', time: T2 },
      { state: 'Done', time: T2 },
    ]);
  });

  it('keeps a repeated state (a rescheduled unit passes Executing twice)', () => {
    const steps = [
      historyStep(['Executing'], T1),
      historyStep(['Unscheduled'], T2),
      historyStep(['Executing'], T2),
    ];
    expect(decodeHistory(steps).map((e) => e.state)).toEqual(['Executing', 'Unscheduled', 'Executing']);
  });

  it('reads anything that is not a list of steps as no history, without throwing', () => {
    for (const v of [undefined, null, 'Executing@1', 42, { 0: 'Executing@1' }, new Set(['Executing@1'])]) {
      expect(decodeHistory(v), String(v)).toEqual([]);
    }
    expect(decodeHistory([])).toEqual([]);
  });

  it('skips malformed steps and keeps the good ones around them', () => {
    const good = historyStep(['Done'], T2);
    const steps = [
      42, // not a string
      'Executing', // no time
      '@1700000000000', // no state
      'Executing@soon', // time not a number
      'Executing@', // empty time (Number('') would be 1970)
      'Executing@ ', // blank time
      'Executing@-5', // before the epoch: never written
      'Executing@1e3', // not how historyStep writes a time
      'Executing@99999999999999999999', // past Date's range (toISOString would throw)
      good,
    ];
    expect(decodeHistory(steps)).toEqual([{ state: 'Done', time: T2 }]);
  });

  it('splits at the last @, so the time is always the part after it', () => {
    expect(decodeHistory(['A@B@0'])).toEqual([{ state: 'A@B', time: '1970-01-01T00:00:00.000Z' }]);
  });
});

describe('stripKeys', () => {
  it('drops key and index attributes, expands the history, sorts a pilot set, keeps the rest', () => {
    const item = {
      pk: 's1',
      kind: 'unit#u1',
      parent: 'umgr.1',
      pilotKey: 'p1',
      next_unit: 3,
      uid: 'u1',
      state: 'Done',
      log: ['x'],
      pilots: new Set(['p2', 'p1']),
      [HISTORY]: [historyStep(['New'], T1), historyStep(['Done'], T2)],
    };
    expect(stripKeys(item)).toEqual({
      uid: 'u1',
      state: 'Done',
      log: ['x'],
      pilots: ['p1', 'p2'],
      stateHistory: [
        { state: 'New', time: T1 },
        { state: 'Done', time: T2 },
      ],
    });
    // The item itself is left as it was (callers may still hold it).
    expect(item.pk).toBe('s1');
    expect(item[HISTORY]).toHaveLength(2);
  });

  it('leaves a record without a history attribute without a stateHistory', () => {
    expect(stripKeys({ pk: 's1', kind: 'session', sessionId: 's1' })).toEqual({ sessionId: 's1' });
  });
});
