/** Unit-manager schedulers (core/schedulers.ts): name checks and early binding of units to pilots. */
import { describe, expect, it } from 'vitest';
import { BadParameter } from '../core/errors.ts';
import {
  bindsLate,
  bindUnits,
  IMPLEMENTED_SCHEDULERS,
  parseScheduler,
  SCHEDULERS,
} from '../core/schedulers.ts';

describe('parseScheduler', () => {
  it('accepts the implemented names as they are', () => {
    for (const name of IMPLEMENTED_SCHEDULERS) expect(parseScheduler(name)).toBe(name);
  });

  it('refuses an unknown name, naming the field, the choices and the value', () => {
    for (const bad of ['Round_Robin', '', 42, undefined, null]) {
      const e = (() => {
        try {
          return parseScheduler(bad);
        } catch (err) {
          return err;
        }
      })();
      expect(e, String(bad)).toBeInstanceOf(BadParameter);
      expect((e as Error).message).toContain('unit manager.scheduler');
      expect((e as Error).message).toContain(SCHEDULERS.join(', '));
      expect((e as Error).message).toContain(JSON.stringify(bad) ?? 'undefined');
    }
  });

  it('accepts every RP scheduler, backfilling too', () => {
    expect(IMPLEMENTED_SCHEDULERS).toEqual(SCHEDULERS);
    expect(parseScheduler('backfilling')).toBe('backfilling');
  });
});

describe('bindsLate', () => {
  it('is true for backfilling only', () => {
    expect(SCHEDULERS.filter(bindsLate)).toEqual(['backfilling']);
  });
});

describe('bindUnits', () => {
  it('refuses to bind when the manager has no live pilot, whatever the scheduler', () => {
    for (const s of IMPLEMENTED_SCHEDULERS.filter((s) => !bindsLate(s))) {
      expect(() => bindUnits(s, [], 3)).toThrow(/no live pilot; add one with addPilots\(\) first/);
    }
  });

  it('refuses to bind at submit for backfilling (late binding)', () => {
    expect(() => bindUnits('backfilling', ['p0'], 1)).toThrow('backfilling binds units late, not at submit');
  });

  it('direct_submission binds every unit to the one pilot', () => {
    expect(bindUnits('direct_submission', ['p0'], 3)).toEqual({ pilots: ['p0', 'p0', 'p0'], next: 0 });
    expect(bindUnits('direct_submission', ['p0'], 0)).toEqual({ pilots: [], next: 0 });
  });

  it('direct_submission with more than one pilot is refused, pointing at round_robin (as RP)', () => {
    expect(() => bindUnits('direct_submission', ['p0', 'p1'], 1)).toThrow(
      'direct_submission works with exactly one pilot, the unit manager has 2; use round_robin',
    );
  });

  it('round_robin cycles from where it stopped and says where the next submission starts', () => {
    const pilots = ['p0', 'p1', 'p2'];
    const a = bindUnits('round_robin', pilots, 4);
    expect(a).toEqual({ pilots: ['p0', 'p1', 'p2', 'p0'], next: 1 });
    const b = bindUnits('round_robin', pilots, 2, a.next);
    expect(b).toEqual({ pilots: ['p1', 'p2'], next: 0 });
    // Two submissions in a row spread exactly as one submission of all of them would.
    expect([...a.pilots, ...b.pilots]).toEqual(bindUnits('round_robin', pilots, 6).pilots);
  });

  it('round_robin spreads evenly: counts per pilot differ by at most one', () => {
    const pilots = ['p0', 'p1', 'p2', 'p3'];
    const { pilots: bound } = bindUnits('round_robin', pilots, 1_001, 3);
    const counts = pilots.map((p) => bound.filter((b) => b === p).length);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    expect(counts.reduce((x, y) => x + y)).toBe(1_001);
    expect(bound[0]).toBe('p3');
  });

  it('round_robin with a start beyond the pilot list (pilots removed since) wraps around', () => {
    expect(bindUnits('round_robin', ['p0', 'p1'], 3, 5)).toEqual({ pilots: ['p1', 'p0', 'p1'], next: 0 });
  });

  it('round_robin of no units binds nothing and keeps the start', () => {
    expect(bindUnits('round_robin', ['p0', 'p1'], 0, 1)).toEqual({ pilots: [], next: 1 });
  });
});
