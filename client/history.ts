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

/** One log line as RP's `Logentry(message, timestamp)`, with the wire's ISO `time` kept beside it. */
export interface LogEntry {
  message: string;
  /** When it was written (ISO 8601); absent for lines of records written before times were kept. */
  time?: string;
  /** The same as a Date (RP's `timestamp`). */
  timestamp?: Date;
  /** The message, so that entries print and join as the lines do. */
  toString(): string;
}

/** Pairs log lines with their times; the times, where fewer, belong to the last lines. */
export function logEntries(log: readonly string[], logTimes: readonly string[] = []): LogEntry[] {
  const offset = log.length - logTimes.length;
  return log.map((message, i) => {
    const time = i >= offset ? logTimes[i - offset] : undefined;
    return {
      message,
      ...(time ? { time, timestamp: new Date(time) } : {}),
      toString: () => message,
    };
  });
}
