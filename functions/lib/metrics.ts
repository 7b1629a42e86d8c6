/**
 * Unit and pilot metrics from every Lambda, as CloudWatch Embedded Metric Format lines (Powertools
 * Metrics), plus the Lambda context in every log line (Powertools Logger).
 *
 * The counts come from the store's observer (store/observer.ts), which sees every creation, state change
 * and refusal whichever route or step made it, so no handler counts anything itself. Each invocation
 * counts into its own buffer (AsyncLocalStorage): the embedded backend runs many handlers at once in one
 * process, and Lambda reuses a container for the next invocation. The buffer is published as one EMF line
 * when the invocation ends, to stdout in Lambda (CloudWatch turns it into metrics) or to the sink the
 * embedded backend sets.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { METRICS, type MetricName } from '../../stacks/manifest.ts';
import type { ObservedKind, StoreObserver } from '../../store/index.ts';
import { logger } from './log.ts';
import { meterInvocation } from './usage.ts';

const N = METRICS.names;

/** One invocation's counts, and whether its unit changes are a pilot end's sweep. */
interface Invocation {
  counts: Map<MetricName, number>;
  sweeping: boolean;
  /** One pilot's end (Finalize): publishes UnitsSwept even when 0, so its average is per pilot end. */
  pilotEnd: boolean;
}

const current = new AsyncLocalStorage<Invocation>();

/** Where EMF lines go: stdout (Lambda ships it to CloudWatch Logs, which extracts the metrics). */
let sink: (line: string) => void = (line) => {
  process.stdout.write(`${line}\n`);
};

/** Send EMF lines elsewhere (the embedded backend keeps them for tests); returns the previous sink. */
export function setMetricsSink(next: (line: string) => void): (line: string) => void {
  const previous = sink;
  sink = next;
  return previous;
}

// Serialises one invocation's counts at a time; never holds counts across an await.
const emf = new Metrics({ namespace: METRICS.namespace, serviceName: METRICS.service });

function add(name: MetricName, n = 1): void {
  const inv = current.getStore();
  if (!inv) return;
  inv.counts.set(name, (inv.counts.get(name) ?? 0) + n);
}

/** What entering each unit state counts as. */
const UNIT_ENTERED: Partial<Record<string, MetricName>> = {
  Executing: N.unitsStarted,
  Done: N.unitsDone,
  Failed: N.unitsFailed,
  Canceled: N.unitsCanceled,
  Unscheduled: N.unitsRescheduled,
};

/** What entering each pilot state counts as. */
const PILOT_ENTERED: Partial<Record<string, MetricName>> = {
  Active: N.pilotsActive,
  Done: N.pilotsDone,
  Failed: N.pilotsFailed,
  Canceled: N.pilotsCanceled,
};

/**
 * The metric counts of one store change, pure: `passed` are the states a record entered in one write.
 * A unit that entered several (a report of Done that fills in Executing) counts once per state.
 */
export function countsOfTransition(what: ObservedKind, passed: readonly string[]): MetricName[] {
  const table = what === 'unit' ? UNIT_ENTERED : PILOT_ENTERED;
  const counts = passed.flatMap((s) => table[s] ?? []);
  // A claim enters its claim state first (Scheduling, or StagingInput for a unit the agent stages); a staged
  // unit's later start fills in Scheduling after PendingExecution, which is not a second claim.
  if (what === 'unit' && CLAIM_STATES.includes(passed[0] ?? '')) counts.unshift(N.unitsClaimed);
  return counts;
}

/** The states an agent's claim moves a unit to (core/states.ts `claimState`). */
const CLAIM_STATES: readonly string[] = ['Scheduling', 'StagingInput'];

/** The store observer that counts into the running invocation's buffer. */
export const metricsObserver: StoreObserver = {
  created(what, states) {
    add(what === 'unit' ? N.unitsSubmitted : N.pilotsSubmitted, states.length);
  },
  transitioned(what, passed) {
    for (const name of countsOfTransition(what, passed)) add(name);
    const inv = current.getStore();
    if (inv?.sweeping && what === 'unit' && passed.length) add(N.unitsSwept);
  },
  refused(what, target) {
    if (what === 'unit' && CLAIM_STATES.includes(target ?? '')) add(N.claimsRefused);
  },
};

/** Publish one invocation's counts as one EMF line (nothing when it counted nothing). */
function publish(inv: Invocation): void {
  // A pilot end that moved nothing is a datapoint too: the per-pilot-end average must see it.
  if (inv.pilotEnd && !inv.counts.has(N.unitsSwept)) inv.counts.set(N.unitsSwept, 0);
  if (inv.counts.size === 0) return;
  for (const [name, n] of inv.counts) emf.addMetric(name, MetricUnit.Count, n);
  const line = JSON.stringify(emf.serializeMetrics());
  emf.clearMetrics();
  try {
    sink(line);
  } catch (err) {
    logger.warn('metrics not published', { error: err as Error });
  }
}

/** Lambda's context object, as far as the wrapper reads it. */
export interface ContextLike {
  functionName?: string;
  awsRequestId?: string;
}

/**
 * Wrap a handler: its log lines carry the Lambda context (request id, function, cold start), its store
 * changes are counted, and the counts are published when it returns or throws. `sweeps`: every unit this
 * function moves is a pilot end's sweep (the reconciler); `pilotEnd`: each invocation is one pilot's end
 * (Finalize), which also sweeps.
 */
export function withMetrics<E, R>(
  handler: (event: E, context?: ContextLike) => Promise<R>,
  options: { sweeps?: boolean; pilotEnd?: boolean } = {},
): (event: E, context?: ContextLike) => Promise<R> {
  return (event, context) => {
    // Powertools reads the fields it needs (request id, function name, memory, ARN) and marks cold starts.
    // Only in Lambda, where a container runs one invocation at a time: the embedded backend overlaps
    // invocations in one process and one logger, so a line would name a neighbour's request.
    if (context?.awsRequestId && process.env.AWS_LAMBDA_FUNCTION_NAME)
      logger.addContext(context as Parameters<typeof logger.addContext>[0]);
    const pilotEnd = options.pilotEnd === true;
    const inv: Invocation = { counts: new Map(), sweeping: pilotEnd || options.sweeps === true, pilotEnd };
    return current.run(inv, () =>
      meterInvocation(event, context?.functionName, async () => {
        try {
          return await handler(event, context);
        } finally {
          publish(inv);
        }
      }),
    );
  };
}
