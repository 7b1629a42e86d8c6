/**
 * A session's counted control-plane usage: flat counters that every Lambda adds to the session's record
 * (DynamoDB `ADD`, so concurrent containers never overwrite each other), and their price at list prices.
 * Pure: the counting happens in functions/lib/usage.ts, the pricing in core/pricing.ts.
 */
import { type CostBreakdown, gbSeconds, priceUsage, type Usage } from './pricing.ts';

/** Counted usage, as stored on the session (attribute `usage_<name>`). */
export interface UsageCounters {
  /** Lambda invocations charged to the session. */
  lambdaRequests: number;
  /** Billed Lambda duration × configured memory, in MB·ms (GB-s = MB·ms / 1024 / 1000). */
  lambdaMbMs: number;
  /** HTTP API requests, and the requests billed after 512 KiB metering. */
  httpRequests: number;
  httpBilled: number;
  /** DynamoDB calls and the request units they consumed (table and GSIs). */
  dynamoCalls: number;
  dynamoWru: number;
  dynamoRru: number;
  /** SQS calls, and the requests billed after 64 KiB chunking. */
  sqsCalls: number;
  sqsBilled: number;
  /** Step Functions state transitions of the session's pilot executions. */
  sfnTransitions: number;
}

/** The counter names, in a fixed order (stored attributes, tables, tests). */
export const USAGE_COUNTERS: readonly (keyof UsageCounters)[] = [
  'lambdaRequests',
  'lambdaMbMs',
  'httpRequests',
  'httpBilled',
  'dynamoCalls',
  'dynamoWru',
  'dynamoRru',
  'sqsCalls',
  'sqsBilled',
  'sfnTransitions',
];

/** All counters zero. */
export function emptyUsage(): UsageCounters {
  return Object.fromEntries(USAGE_COUNTERS.map((k) => [k, 0])) as unknown as UsageCounters;
}

/** Adds `b` into `a` (in place) and returns `a`. */
export function addUsage(a: UsageCounters, b: Partial<UsageCounters>): UsageCounters {
  for (const k of USAGE_COUNTERS) a[k] += b[k] ?? 0;
  return a;
}

/** `u` divided evenly among `n` sessions (one invocation that served several). */
export function shareOf(u: UsageCounters, n: number): UsageCounters {
  if (!(n >= 1)) throw new Error(`shareOf: n must be at least 1, got ${n}`);
  return Object.fromEntries(USAGE_COUNTERS.map((k) => [k, u[k] / n])) as unknown as UsageCounters;
}

/** True when nothing was counted. */
export function isEmptyUsage(u: UsageCounters): boolean {
  return USAGE_COUNTERS.every((k) => u[k] === 0);
}

/** The counters as pricing's {@link Usage} (all Lambda duration as one line, in GB-s). */
export function usageOfCounters(u: UsageCounters): Usage {
  return {
    // gbSeconds(billedMs, memoryMB) with memoryMB = 1024 is billedMs / 1000: MB·ms / 1024 is that billedMs.
    lambda: { all: { invocations: u.lambdaRequests, billedMs: u.lambdaMbMs / 1024, memoryMB: 1024 } },
    httpApi: { requests: u.httpRequests, billed: u.httpBilled },
    dynamo: { calls: u.dynamoCalls, wru: u.dynamoWru, rru: u.dynamoRru },
    sqs: { calls: u.sqsCalls, billed: u.sqsBilled },
    sfn: { transitions: u.sfnTransitions },
  };
}

/** GB-seconds of the counted Lambda duration. */
export function lambdaGbSeconds(u: UsageCounters): number {
  return gbSeconds(u.lambdaMbMs / 1024, 1024);
}

/** The counted usage priced at list prices, per `units` units of work (undefined without units). */
export function priceCounters(u: UsageCounters, units: number): CostBreakdown | undefined {
  return units > 0 ? priceUsage(usageOfCounters(u), units) : undefined;
}
