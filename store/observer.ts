/**
 * What the store tells an observer about the changes it makes: records created, states entered, changes
 * refused. The store counts nothing itself; the adapters turn these into metrics (functions/lib/metrics.ts).
 * Every state change goes through one guarded write (store/guarded.ts), so one hook there sees them all,
 * whichever route or step made them.
 */

/** Which kind of record changed. */
export type ObservedKind = 'pilot' | 'unit';

/** Receives the store's changes as they succeed or are refused. Calls are synchronous and must not throw. */
export interface StoreObserver {
  /** Records written new, with the state each starts in. */
  created?(what: ObservedKind, states: readonly string[]): void;
  /** One record entered `passed` (in order; empty for a retried step that entered nothing). */
  transitioned?(what: ObservedKind, passed: readonly string[]): void;
  /** A change to `target` was refused (lost race, already passed, bound elsewhere, missing record). */
  refused?(what: ObservedKind, target: string | undefined): void;
  /**
   * An item of this byParent partition was written (created, or changed through a guarded write): the
   * change feed of its manager moved. A held list request wakes on it (functions/lib/changes.ts).
   * `final`: whether a record written is now in a final state (a hold for final states wakes only then).
   */
  wrote?(parent: string, final: boolean): void;
}

/** Calls `fn` and swallows what it throws: an observer's fault must never fail a write that succeeded. */
export function notify(fn: () => void): void {
  try {
    fn();
  } catch {
    // A metric lost is better than a state change reported as failed after it was written.
  }
}
