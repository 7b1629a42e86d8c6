/**
 * Purging a closed session's records (RP's `Session.close(cleanup=True)`, which drops the session's DB
 * collections). The close only marks the session (`purgeAt`, now + a retention); the reconciler deletes
 * the records later, in pages and within a per-run budget, because a session can hold 100k+ units and an
 * API request has 29 s. The retention keeps `sortie report` and the dashboard working right after a script
 * closes its session.
 *
 * Pure: what is due, in which order its records go, and how much of a run's budget is left. The store
 * (store/purge.ts) walks the table; the reconciler (functions/pilot/purge.ts) composes the two.
 */
import { BadParameter } from './errors.ts';

/** Default seconds between a close with cleanup and the purge of the session's records: a day. */
export const DEFAULT_CLEANUP_RETENTION_SECONDS = 86_400;

/**
 * The retention from its setting (env SORTIE_CLEANUP_RETENTION_SECONDS): absent or empty gives the default;
 * 0 purges at the reconciler's next run.
 * @throws BadParameter for anything but a whole number of seconds ≥ 0: a typo must not purge at once.
 */
export function parseRetentionSeconds(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return DEFAULT_CLEANUP_RETENTION_SECONDS;
  if (!/^[0-9]+$/.test(raw.trim()))
    throw new BadParameter(
      `cleanup retention: must be a whole number of seconds ≥ 0, got ${JSON.stringify(raw)}`,
    );
  return Number(raw.trim());
}

/** When a session closed with cleanup at `closeMs` may be purged (ISO time, so it sorts and reads well). */
export function purgeAtFor(closeMs: number, retentionSeconds: number): string {
  return new Date(closeMs + retentionSeconds * 1000).toISOString();
}

/** True once `purgeAt` has passed at `nowMs`. A session without one (closed without cleanup) never is. */
export function retentionPassed(purgeAt: string | undefined, nowMs: number): boolean {
  if (purgeAt === undefined) return false;
  const at = Date.parse(purgeAt);
  return !Number.isNaN(at) && at <= nowMs;
}

/** What the purge needs to know of one of the session's pilots. */
export interface PurgePilotView {
  uid: string;
  /** Its state is final (DONE, FAILED, CANCELED). */
  final: boolean;
  /** Still among the live pilots: its end is not fully processed (Finalize has not swept and retired it). */
  live: boolean;
}

/** What the purge needs to know of a marked session. */
export interface PurgeView {
  purgeAt?: string;
  pilots: readonly PurgePilotView[];
}

/** `purge`: delete its records now. `wait`: not this run, and why. */
export type PurgeDecision = { kind: 'purge' } | { kind: 'wait'; reason: string };

/**
 * Whether a marked session's records go now. Not before its retention, and not while a pilot is unfinished
 * or not yet retired: Finalize (or the reconciler on its behalf) must still be able to sweep the pilot's
 * units and record its end, and a purge under it would leave it writing to records that are gone.
 */
export function purgeDecision(view: PurgeView, nowMs: number): PurgeDecision {
  if (view.purgeAt === undefined) return { kind: 'wait', reason: 'not closed with cleanup' };
  if (!retentionPassed(view.purgeAt, nowMs))
    return { kind: 'wait', reason: `retention runs until ${view.purgeAt}` };
  const busy = view.pilots.find((p) => !p.final || p.live);
  if (busy)
    return {
      kind: 'wait',
      reason: busy.final ? `pilot ${busy.uid} is not swept yet` : `pilot ${busy.uid} has not ended`,
    };
  return { kind: 'purge' };
}

/** One group of a session's records, named by how it is found (the store knows the keys). */
export type PurgeStep =
  | { what: 'units'; umgr: string }
  | { what: 'pilotSideItems'; pilot: string }
  | { what: 'pilots'; pmgr: string }
  | { what: 'endpoints' }
  | { what: 'contexts' }
  | { what: 'resources' }
  | { what: 'managers'; kind: 'umgr' | 'pmgr' }
  | { what: 'session' };

/** The ids the plan is made of: the session's managers and pilots. */
export interface PurgeIds {
  umgrs: readonly string[];
  pmgrs: readonly string[];
  pilots: readonly string[];
}

/**
 * The order a session's records are deleted in. Each group is found through one that goes after it: units
 * through their unit manager, a pilot's side items (endpoint requests, its last pull) through its id, pilots through their pilot
 * manager, and everything through the session item, which holds the purge mark. So a run cut short by its
 * budget or a crash leaves every remaining record findable, and the next run resumes where it stopped.
 * Units come first because they are the bulk; the session item goes last, which also ends the purge
 * (it leaves the partition of marked sessions).
 */
export function purgePlan(ids: PurgeIds): PurgeStep[] {
  return [
    ...ids.umgrs.map((umgr): PurgeStep => ({ what: 'units', umgr })),
    ...ids.pilots.map((pilot): PurgeStep => ({ what: 'pilotSideItems', pilot })),
    ...ids.pmgrs.map((pmgr): PurgeStep => ({ what: 'pilots', pmgr })),
    { what: 'endpoints' },
    { what: 'contexts' },
    { what: 'resources' },
    { what: 'managers', kind: 'umgr' },
    { what: 'managers', kind: 'pmgr' },
    { what: 'session' },
  ];
}

/** What one reconciler run may spend on purging, over all sessions. */
export interface PurgeBudget {
  /** Records it may delete. */
  items: number;
  /** Time after which it starts no new page (ms since the epoch). */
  deadlineMs: number;
}

/** Default records one run deletes: a 100k-unit session is gone in ten runs. */
export const DEFAULT_PURGE_BUDGET_ITEMS = 10_000;
/** Default seconds one run spends deleting: well inside the reconciler's timeout, after its pilot work. */
export const DEFAULT_PURGE_BUDGET_SECONDS = 30;

/**
 * How many records the next page may delete: up to `pageMax`, no more than the budget has left, and none
 * once the deadline has passed (0 means stop, and let the next run carry on).
 */
export function nextPageSize(budget: PurgeBudget, spent: number, nowMs: number, pageMax: number): number {
  if (nowMs >= budget.deadlineMs) return 0;
  return Math.max(0, Math.min(pageMax, budget.items - spent));
}
