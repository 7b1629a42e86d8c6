/**
 * Unit-manager schedulers (RP 0.2x): early binding of units to pilots at submit time. Pure: given the
 * manager's live pilots and where round robin stopped, say which pilot each new unit goes to.
 */
import { BadParameter } from './errors.ts';

/** Scheduler names (RP's SCHED_* constants). */
export const SCHEDULERS = ['direct_submission', 'round_robin', 'backfilling'] as const;
/** A scheduler name. */
export type SchedulerName = (typeof SCHEDULERS)[number];

/** Schedulers this release implements (backfilling's late binding is not built yet). */
export const IMPLEMENTED_SCHEDULERS: readonly SchedulerName[] = ['direct_submission', 'round_robin'];

/** Checks a scheduler name, naming the field and value on error. */
export function parseScheduler(v: unknown): SchedulerName {
  if (typeof v !== 'string' || !(SCHEDULERS as readonly string[]).includes(v)) {
    throw new BadParameter(
      `unit manager.scheduler: must be one of ${SCHEDULERS.join(', ')}, got ${JSON.stringify(v)}`,
    );
  }
  if (!IMPLEMENTED_SCHEDULERS.includes(v as SchedulerName)) {
    throw new BadParameter(
      `unit manager.scheduler: '${v}' is not implemented yet; use ${IMPLEMENTED_SCHEDULERS.join(' or ')}`,
    );
  }
  return v as SchedulerName;
}

/**
 * Binds `count` units to pilots. direct_submission needs exactly one pilot (RP raises otherwise);
 * round_robin cycles over `pilots` starting at `start`. Returns the pilot of each unit and the next start.
 */
export function bindUnits(
  scheduler: SchedulerName,
  pilots: readonly string[],
  count: number,
  start = 0,
): { pilots: string[]; next: number } {
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
