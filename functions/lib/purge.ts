/**
 * The purge's deployment settings, from the environment (stacks/ sets them in AWS, local/ in the embedded
 * backend): how long a session closed with cleanup keeps its records, and how much one reconciler run
 * deletes.
 */
import { DEFAULT_PURGE_BUDGET_ITEMS, parseRetentionSeconds } from '../../core/purge.ts';
import { ENV } from '../../stacks/manifest.ts';

/**
 * Seconds from a close with cleanup to the purge of the session's records (default a day).
 * @throws BadParameter when the setting is not a whole number of seconds.
 */
export function cleanupRetentionSeconds(): number {
  return parseRetentionSeconds(process.env[ENV.cleanupRetentionSeconds]);
}

/** Records one reconciler run may delete (default 10,000); anything but a positive number is the default. */
export function purgeBudgetItems(): number {
  const n = Math.floor(Number(process.env[ENV.purgeBudgetItems]));
  return n > 0 ? n : DEFAULT_PURGE_BUDGET_ITEMS;
}
