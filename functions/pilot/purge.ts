/**
 * The reconciler's purge pass: deletes the records of sessions closed with cleanup once their retention
 * has passed and their pilots' ends are fully processed (core/purge.ts decides, store/purge.ts deletes).
 * One budget for the whole pass: sessions are taken in the partition's order and each is finished before
 * the next is started, so a 100k-unit session is deleted over a few runs and the ones after it wait.
 */
import {
  DEFAULT_PURGE_BUDGET_SECONDS,
  type PurgeBudget,
  purgeDecision,
  purgePlan,
  retentionPassed,
} from '../../core/purge.ts';
import { purgeBudgetItems } from '../lib/purge.ts';
import { store } from '../lib/store.ts';

/** What one purge pass did. */
export interface PurgeReport {
  /** Sessions whose records were deleted this run; `done` when the last one (the session item) went. */
  purged: { sid: string; deleted: number; done: boolean }[];
  /** Sessions past their retention left for a later run, and why (a pilot still ending). */
  waiting: { sid: string; reason: string }[];
  /** Sessions whose purge failed this run (they stay marked: the next run tries again). */
  failed: { sid: string; error: string }[];
}

/** The budget of one pass starting now: the deployment's item count, and a time limit. */
export function purgeBudget(nowMs: number): PurgeBudget {
  return { items: purgeBudgetItems(), deadlineMs: nowMs + DEFAULT_PURGE_BUDGET_SECONDS * 1000 };
}

/** One purge pass over the sessions marked for it, within `budget`. */
export async function purgeSessions(nowMs: number, budget: PurgeBudget): Promise<PurgeReport> {
  const report: PurgeReport = { purged: [], waiting: [], failed: [] };
  let spent = 0;
  let next: string | undefined;
  do {
    const page = await store().listSessionsToPurge({ limit: 100, next });
    next = page.next;
    for (const s of page.items) {
      // Most marked sessions are within their retention: decided from the item, without reading more.
      if (!retentionPassed(s.purgeAt, nowMs)) continue;
      const sid = s.sessionId;
      try {
        const subjects = await store().purgeSubjects(sid);
        const decision = purgeDecision({ ...s, pilots: subjects.pilots }, nowMs);
        if (decision.kind === 'wait') {
          report.waiting.push({ sid, reason: decision.reason });
          continue;
        }
        const plan = purgePlan({ ...subjects, pilots: subjects.pilots.map((p) => p.uid) });
        const progress = await store().purgeRecords(sid, plan, budget, spent);
        spent += progress.deleted;
        report.purged.push({ sid, ...progress });
        // Cut short by the budget: the rest waits for the next run, this session first.
        if (!progress.done) return report;
      } catch (err) {
        // One session that cannot be purged now must not stop the others; it stays marked.
        report.failed.push({ sid, error: (err as Error).message });
      }
    }
  } while (next);
  return report;
}
