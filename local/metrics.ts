/**
 * The embedded backend's CloudWatch: it takes the Embedded Metric Format lines the handlers publish
 * (functions/lib/metrics.ts) instead of stdout, keeps the latest, and sums each metric, so a test can
 * assert the metrics a workload produced and `sortie up` stays quiet.
 */
import { setMetricsSink } from '../functions/lib/metrics.ts';

/** EMF lines kept for reading; older ones are dropped (the totals keep counting). */
const KEEP_LINES = 10_000;

/** Captured metrics of this process's handlers. */
export interface CapturedMetrics {
  /** The latest EMF lines, oldest first (at most 10,000). */
  readonly lines: readonly string[];
  /** Sum of every metric's values since capture began, by metric name. */
  totals(): Record<string, number>;
  /** Give the lines back to the sink that was there before. */
  close(): void;
}

/** The metric values of one EMF line: every name its `_aws.CloudWatchMetrics` declares, with its value. */
export function emfValues(line: string): Record<string, number> {
  const doc = JSON.parse(line) as {
    _aws?: { CloudWatchMetrics?: { Metrics?: { Name: string }[] }[] };
    [k: string]: unknown;
  };
  const out: Record<string, number> = {};
  for (const group of doc._aws?.CloudWatchMetrics ?? []) {
    for (const { Name } of group.Metrics ?? []) {
      const v = doc[Name];
      // EMF allows a list of values for one name in one line; their sum is what CloudWatch's Sum sees.
      out[Name] = Array.isArray(v) ? v.reduce((a: number, b) => a + Number(b), 0) : Number(v);
    }
  }
  return out;
}

/**
 * Start capturing. One capture per process at a time: the handlers of every embedded backend in this
 * process share one sink (the last capture started wins until it is closed).
 */
export function captureMetrics(): CapturedMetrics {
  const lines: string[] = [];
  const sums = new Map<string, number>();
  const previous = setMetricsSink((line) => {
    lines.push(line);
    if (lines.length > KEEP_LINES) lines.splice(0, lines.length - KEEP_LINES);
    for (const [name, v] of Object.entries(emfValues(line))) sums.set(name, (sums.get(name) ?? 0) + v);
  });
  return {
    lines,
    totals: () => Object.fromEntries(sums),
    close: () => {
      setMetricsSink(previous);
    },
  };
}
