/**
 * The SDK's change-feed watcher delivers each history entry once and in order, also when a late agent
 * report inserts a step before the last one (EXECUTING before a CANCELED it arrived after): the watcher
 * resumes after the entry it delivered last instead of counting entries.
 */
import { describe, expect, it } from 'vitest';
import { Watcher } from '../client/watcher.ts';
import { pages } from '../core/pages.ts';
import type { Page } from '../core/wire.ts';

interface Rec {
  uid: string;
  state: string;
  changed: string;
  stateHistory: { state: string; time: string }[];
}

const at = (s: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, s)).toISOString();
const rec = (changed: number, ...steps: [string, number][]): Rec => ({
  uid: 'unit.000000',
  state: steps.at(-1)?.[0] ?? 'New',
  changed: `${at(changed)}#unit.000000`,
  stateHistory: steps.map(([state, s]) => ({ state, time: at(s) })),
});

describe('watcher', () => {
  it('delivers an inserted history step never twice and never out of order; later entries still come', async () => {
    let server: Rec[] = [];
    const w = new Watcher<string, Rec>(() =>
      pages(
        async (): Promise<Page<Rec>> => ({
          items: server,
          cursor: server[0]?.changed ?? '',
        }),
      ),
    );
    const seen: string[] = [];
    const off = w.register((_r, state) => seen.push(state));
    try {
      server = [rec(3, ['New', 0], ['Scheduling', 1], ['Canceled', 3])];
      await w.poll();
      expect(seen).toEqual(['New', 'Scheduling', 'Canceled']);
      // The late EXECUTING report lands before CANCELED: nothing is delivered again.
      server = [rec(4, ['New', 0], ['Scheduling', 1], ['Executing', 2], ['Canceled', 3])];
      await w.poll();
      expect(seen).toEqual(['New', 'Scheduling', 'Canceled']);
      expect(w.records.get('unit.000000')?.stateHistory.map((h) => h.state)).toContain('Executing');
      // The real outcome overrides CANCELED afterwards: delivered once.
      server = [rec(5, ['New', 0], ['Scheduling', 1], ['Executing', 2], ['Canceled', 3], ['Done', 5])];
      await w.poll();
      await w.poll();
      expect(seen).toEqual(['New', 'Scheduling', 'Canceled', 'Done']);
    } finally {
      off();
    }
  });
});
