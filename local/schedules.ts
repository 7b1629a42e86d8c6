/**
 * Scheduled functions (the manifest's `SCHEDULES`) in the embedded backend: what an EventBridge rate rule
 * does in AWS, as a timer. Runs never overlap (a slow run delays the next), and a failed run is logged and
 * left for the next tick, as a rule target without retries would be.
 */
import type { FunctionName } from '../stacks/manifest.ts';
import { invoke } from './lambdas.ts';

/** Running schedules. */
export interface Schedules {
  /** Stops the timers and waits for a run in progress. */
  close(): Promise<void>;
}

/**
 * Starts one timer per schedule, every `seconds` (default: the schedule's own rate); `seconds = 0` starts none.
 */
export function startSchedules(
  schedules: readonly { function: FunctionName; rateMinutes: number }[],
  seconds?: number,
): Schedules {
  if (seconds === 0) return { close: async () => {} };
  let closed = false;
  // One pending timer per schedule: the next tick is armed only when the previous run has ended.
  const timers = new Map<FunctionName, NodeJS.Timeout>();
  const running = new Set<Promise<void>>();
  for (const s of schedules) {
    const periodMs = (seconds ?? s.rateMinutes * 60) * 1000;
    const tick = () => {
      if (closed) return;
      const run = invoke(s.function, { source: 'sortie.schedule' })
        .then(
          () => {},
          (err: Error) => console.warn(`schedule ${s.function}: ${err.message}`),
        )
        .finally(() => {
          running.delete(run);
          if (!closed) arm();
        });
      running.add(run);
    };
    const arm = () => {
      // A schedule alone must not keep a process alive.
      timers.set(s.function, setTimeout(tick, periodMs).unref());
    };
    arm();
  }
  return {
    async close() {
      closed = true;
      for (const t of timers.values()) clearTimeout(t);
      await Promise.all(running);
    },
  };
}
