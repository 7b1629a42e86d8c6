/**
 * Unit-manager schedulers (RP 0.2x). direct_submission and round_robin bind units to pilots at submit
 * time (early binding; pure: given the manager's live pilots and where round robin stopped, say which
 * pilot each new unit goes to). backfilling binds late: units wait in the manager's queue until an agent
 * with room claims them (core/backfill.ts).
 */
import { BadParameter } from './errors.ts';

/** Scheduler names (RP's SCHED_* constants). */
export const SCHEDULERS = ['direct_submission', 'round_robin', 'backfilling'] as const;
/** A scheduler name. */
export type SchedulerName = (typeof SCHEDULERS)[number];

/** Schedulers this release implements: all of RP's. */
export const IMPLEMENTED_SCHEDULERS: readonly SchedulerName[] = SCHEDULERS;

/** True for a scheduler that binds units late (backfilling): they wait UNSCHEDULED in the manager's queue. */
export function bindsLate(scheduler: string): boolean {
  return scheduler === 'backfilling';
}

/** Checks a scheduler name, naming the field and value on error. */
export function parseScheduler(v: unknown): SchedulerName {
  if (typeof v !== 'string' || !(SCHEDULERS as readonly string[]).includes(v)) {
    throw new BadParameter(
      `unit manager.scheduler: must be one of ${SCHEDULERS.join(', ')}, got ${JSON.stringify(v)}`,
    );
  }
  return v as SchedulerName;
}

/**
 * Binds `count` units to pilots. direct_submission needs exactly one pilot (RP raises otherwise);
 * round_robin cycles over `pilots` starting at `start`. Returns the pilot of each unit and the next start.
 * backfilling binds nothing at submit ({@link bindsLate}); asked anyway, it is refused.
 */
export function bindUnits(
  scheduler: SchedulerName,
  pilots: readonly string[],
  count: number,
  start = 0,
): { pilots: string[]; next: number } {
  if (bindsLate(scheduler)) throw new BadParameter(`${scheduler} binds units late, not at submit`);
  if (pilots.length === 0) {
    throw new BadParameter('submitUnits: the unit manager has no live pilot; add one with addPilots() first');
  }
  if (scheduler === 'direct_submission') {
    if (pilots.length !== 1) {
      throw new BadParameter(
        `direct_submission works with exactly one pilot, the unit manager has ${pilots.length}; use round_robin`,
      );
    }
    return { pilots: Array.from({ length: count }, () => pilots[0] as string), next: 0 };
  }
  const out = Array.from({ length: count }, (_, i) => pilots[(start + i) % pilots.length] as string);
  return { pilots: out, next: (start + count) % pilots.length };
}
