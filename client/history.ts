/** State history entries as the SDK hands them out: the wire's `time` plus RP's `timestamp`. */
import type { StateEntry } from '../core/wire.ts';

/** One state entered: RP's `State(state, timestamp)`, with the wire's ISO `time` kept beside it. */
export interface HistoryEntry<S extends string = string> extends StateEntry<S> {
  /** When the state was entered (RP's `timestamp`, a datetime there). */
  timestamp: Date;
}

/** The wire's history with a `timestamp` on every entry. */
export function withTimestamps<S extends string>(history: readonly StateEntry<S>[]): HistoryEntry<S>[] {
  return history.map((e) => ({ ...e, timestamp: new Date(e.time) }));
}
