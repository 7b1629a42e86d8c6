/**
 * Coalesces unit state reports into batched `POST /agent/states` calls (RP's bulk updates: up to
 * `maxBatch` reports or `intervalMs`, whichever comes first). One call at a time, so reports of one
 * unit reach the control plane in the order they were made.
 *
 * The interval is what lets a short unit's Executing and Done land in one write instead of two, so a busy
 * agent keeps it. An idle one does not need it: a final report (Done, Failed, Canceled) goes out at once,
 * with whatever is pending, when the agent has nothing else running or queued (`quiet`), or nothing was
 * sent for a whole interval; a lone unit's end then reaches the control plane one round trip after it
 * happened instead of up to `intervalMs` later.
 */
import type { AgentApi, UnitReport } from './api.ts';

const FINAL: ReadonlySet<string> = new Set(['Done', 'Failed', 'Canceled']);

/**
 * Largest batch body (about): output tails make reports up to ~130 KiB each, and a Lambda behind API
 * Gateway takes at most 6 MB per request, so a batch is also cut by size.
 */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024;

/** Reports lent to another request are at most this big together: a start must not wait on a big upload. */
const MAX_LENT_BYTES = 256 * 1024;

/** Rough JSON size of a report: its output dominates (characters ≈ bytes for the guess). */
const sizeOf = (r: UnitReport) => 200 + (r.stdout?.length ?? 0) + (r.stderr?.length ?? 0);

export class Reporter {
  private pending: UnitReport[] = [];
  /** When each pending report was made (this reporter's clock), by report. */
  private readonly madeAt = new WeakMap<UnitReport, number>();
  private pendingBytes = 0;
  private inflight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastSend = Number.NEGATIVE_INFINITY;
  /** Reports sent and refused by the control plane (e.g. a unit cancelled meanwhile). */
  sent = 0;
  refused = 0;

  constructor(
    private readonly api: AgentApi,
    private readonly intervalMs = 100,
    private readonly maxBatch = 500,
    private readonly onError: (err: unknown) => void = () => {},
    private readonly clock: () => number = () => performance.now(),
    /** True when no other unit is running or queued: nothing could join this batch. */
    private readonly quiet: () => boolean = () => false,
  ) {}

  report(r: UnitReport): void {
    this.pending.push(r);
    this.madeAt.set(r, this.clock());
    this.pendingBytes += sizeOf(r);
    const idle = !this.inflight && (this.quiet() || this.clock() - this.lastSend >= this.intervalMs);
    const full = this.pending.length >= this.maxBatch || this.pendingBytes >= MAX_BATCH_BYTES;
    if (full || (idle && FINAL.has(r.state))) {
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.intervalMs);
    }
  }

  /**
   * Hands the pending reports to another request about to go out (the write-ahead's start of the units
   * whose cores these ends freed), so one request carries both. Only when no call of this reporter is in
   * flight and they are small; the reporter then waits for that request as for a call of its own, so a
   * unit's reports still reach the control plane in order. `done` with the answer's counts, or with
   * undefined when the request failed: the reports are then kept to be sent again.
   */
  lend():
    | { reports: UnitReport[]; done: (answer?: { applied: number; refused: number }) => void }
    | undefined {
    if (this.inflight || this.pending.length === 0 || this.pendingBytes > MAX_LENT_BYTES) return undefined;
    // A start made less than an interval ago stays for its unit's end, to go in the same write (as the
    // timer would have it); with it, every later report of that unit, so each unit's reports stay in order.
    // A start whose unit's end is pending too is not waiting for it any more (an armed unit's EXECUTING is
    // reported with its end): the pair goes now, in one write.
    const now = this.clock();
    const ended = new Set(this.pending.filter((r) => FINAL.has(r.state)).map((r) => r.uid));
    const held = new Set<string>();
    const reports: UnitReport[] = [];
    const kept: UnitReport[] = [];
    for (const r of this.pending) {
      const young =
        !FINAL.has(r.state) && !ended.has(r.uid) && now - (this.madeAt.get(r) ?? now) < this.intervalMs;
      if (held.has(r.uid) || young || reports.length >= this.maxBatch) {
        held.add(r.uid);
        kept.push(r);
      } else reports.push(r);
    }
    if (reports.length === 0) return undefined;
    this.pending = kept;
    const bytes = reports.reduce((n, r) => n + sizeOf(r), 0);
    this.pendingBytes -= bytes;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.lastSend = this.clock();
    let settle: () => void = () => {};
    this.inflight = new Promise<void>((r) => {
      settle = r;
    });
    return {
      reports,
      done: (answer) => {
        if (answer) {
          this.sent += answer.applied;
          this.refused += answer.refused;
        } else {
          // Back in the order they were made (those kept were made no earlier, unit by unit).
          this.pending = [...reports, ...this.pending];
          this.pendingBytes += bytes;
        }
        this.inflight = undefined;
        settle();
        if (this.pending.length && !this.timer)
          this.timer = setTimeout(() => {
            this.timer = undefined;
            void this.flush();
          }, this.intervalMs);
      },
    };
  }

  /** Sends everything pending; resolves when it has been acknowledged (or failed for good). */
  async flush(): Promise<void> {
    while (this.inflight) await this.inflight;
    if (this.pending.length === 0) return;
    let n = 0;
    let bytes = 0;
    while (n < this.pending.length && n < this.maxBatch) {
      const b = sizeOf(this.pending[n] as UnitReport);
      if (n > 0 && bytes + b > MAX_BATCH_BYTES) break;
      bytes += b;
      n++;
    }
    const batch = this.pending.splice(0, n);
    this.pendingBytes -= bytes;
    this.lastSend = this.clock();
    this.inflight = this.api
      .states(batch)
      .then((r) => {
        this.sent += r.applied;
        this.refused += r.refused;
      })
      .catch(this.onError)
      .finally(() => {
        this.inflight = undefined;
      });
    await this.inflight;
    if (this.pending.length) await this.flush();
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
