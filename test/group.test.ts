import { describe, expect, it } from 'vitest';
import { groupBy } from '../core/group.ts';

describe('groupBy', () => {
  it('keeps items in input order within a group and groups in first-seen order', () => {
    const groups = groupBy(['b1', 'a1', 'b2', 'c1', 'a2'], (s) => s[0]);
    expect([...groups]).toEqual([
      ['b', ['b1', 'b2']],
      ['a', ['a1', 'a2']],
      ['c', ['c1']],
    ]);
  });

  it('groups 100,000 items of one key (the sweep of one manager) in one pass', () => {
    const items = Array.from({ length: 100_000 }, (_, i) => i);
    const groups = groupBy(items, () => 'umgr.0000');
    expect(groups.get('umgr.0000')).toHaveLength(100_000);
    expect(groups.get('umgr.0000')?.[99_999]).toBe(99_999);
  });
});
