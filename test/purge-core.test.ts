/**
 * The purge's pure rules (core/purge.ts): the retention setting, when a marked session is due, the order
 * its records go in, and the per-run budget.
 */
import { describe, expect, it } from 'vitest';
import { BadParameter } from '../core/errors.ts';
import {
  DEFAULT_CLEANUP_RETENTION_SECONDS,
  nextPageSize,
  parseRetentionSeconds,
  purgeAtFor,
  purgeDecision,
  purgePlan,
  retentionPassed,
} from '../core/purge.ts';

const now = Date.parse('2026-01-01T12:00:00Z');

describe('parseRetentionSeconds', () => {
  it.each([
    [undefined, DEFAULT_CLEANUP_RETENTION_SECONDS],
    ['', DEFAULT_CLEANUP_RETENTION_SECONDS],
    ['  ', DEFAULT_CLEANUP_RETENTION_SECONDS],
    ['0', 0],
    [' 3600 ', 3600],
  ])('%j → %d', (raw, seconds) => {
    expect(parseRetentionSeconds(raw)).toBe(seconds);
  });

  it.each(['-1', '1.5', 'a day', '1e3'])('refuses %j rather than purging at once', (raw) => {
    expect(() => parseRetentionSeconds(raw)).toThrow(BadParameter);
  });
});

describe('purgeAtFor and retentionPassed', () => {
  it('puts the purge the retention after the close, and passes it only then', () => {
    const at = purgeAtFor(now, 60);
    expect(at).toBe('2026-01-01T12:01:00.000Z');
    expect(retentionPassed(at, now + 59_999)).toBe(false);
    expect(retentionPassed(at, now + 60_000)).toBe(true);
    expect(retentionPassed(purgeAtFor(now, 0), now)).toBe(true);
  });

  it('never passes for a session without a mark or with an unreadable one', () => {
    expect(retentionPassed(undefined, now)).toBe(false);
    expect(retentionPassed('soon', now)).toBe(false);
  });
});

describe('purgeDecision', () => {
  const past = purgeAtFor(now, -1);
  const ended = { uid: 'pilot.0000', final: true, live: false };

  it('purges a marked session past its retention whose pilots all ended and were swept', () => {
    expect(purgeDecision({ purgeAt: past, pilots: [ended] }, now)).toEqual({ kind: 'purge' });
    expect(purgeDecision({ purgeAt: past, pilots: [] }, now)).toEqual({ kind: 'purge' });
  });

  it('waits, saying why: no mark, retention running, a pilot not ended, a pilot not swept', () => {
    expect(purgeDecision({ pilots: [] }, now)).toEqual({ kind: 'wait', reason: 'not closed with cleanup' });
    const future = purgeAtFor(now, 10);
    expect(purgeDecision({ purgeAt: future, pilots: [] }, now)).toEqual({
      kind: 'wait',
      reason: `retention runs until ${future}`,
    });
    const running = { uid: 'pilot.0001', final: false, live: true };
    expect(purgeDecision({ purgeAt: past, pilots: [ended, running] }, now)).toEqual({
      kind: 'wait',
      reason: 'pilot pilot.0001 has not ended',
    });
    const unswept = { uid: 'pilot.0002', final: true, live: true };
    expect(purgeDecision({ purgeAt: past, pilots: [unswept] }, now)).toEqual({
      kind: 'wait',
      reason: 'pilot pilot.0002 is not swept yet',
    });
  });
});

describe('purgePlan', () => {
  it('deletes each group before the group it is found through, and the session item last', () => {
    const plan = purgePlan({
      umgrs: ['umgr.0000', 'umgr.0001'],
      pmgrs: ['pmgr.0000'],
      pilots: ['pilot.0000'],
    });
    expect(plan).toEqual([
      { what: 'units', umgr: 'umgr.0000' },
      { what: 'units', umgr: 'umgr.0001' },
      { what: 'pilotSideItems', pilot: 'pilot.0000' },
      { what: 'pilots', pmgr: 'pmgr.0000' },
      { what: 'endpoints' },
      { what: 'contexts' },
      { what: 'resources' },
      { what: 'managers', kind: 'umgr' },
      { what: 'managers', kind: 'pmgr' },
      { what: 'session' },
    ]);
    const at = (p: (typeof plan)[number]) => plan.findIndex((s) => JSON.stringify(s) === JSON.stringify(p));
    expect(at({ what: 'pilots', pmgr: 'pmgr.0000' })).toBeGreaterThan(
      at({ what: 'pilotSideItems', pilot: 'pilot.0000' }),
    );
  });

  it('is the fixed groups alone for a session without managers', () => {
    expect(purgePlan({ umgrs: [], pmgrs: [], pilots: [] }).map((s) => s.what)).toEqual([
      'endpoints',
      'contexts',
      'resources',
      'managers',
      'managers',
      'session',
    ]);
  });
});

describe('nextPageSize', () => {
  const budget = { items: 250, deadlineMs: now + 1000 };

  it('gives a full page while the budget lasts, then what is left, then 0', () => {
    expect(nextPageSize(budget, 0, now, 100)).toBe(100);
    expect(nextPageSize(budget, 200, now, 100)).toBe(50);
    expect(nextPageSize(budget, 250, now, 100)).toBe(0);
    expect(nextPageSize(budget, 300, now, 100)).toBe(0);
  });

  it('gives 0 once the deadline has passed, whatever is left', () => {
    expect(nextPageSize(budget, 0, now + 1000, 100)).toBe(0);
  });
});
