/**
 * Follows a manager's change feed (pilots of a pmgr, units of a umgr) and turns it into RP's semantics:
 * every state a record enters is delivered to callbacks exactly once and in order (from its state
 * history, so skipped or coalesced updates are still seen — RP issues #72 and #316), and waits return
 * as soon as their records reach a wanted state, or throw Timeout. One poller per manager serves all
 * waits and callbacks; it runs only while someone listens, so an idle SDK holds no timers.
 */
import { Timeout } from '../core/errors.ts';
import type { Page, StateEntry } from '../core/wire.ts';

/** What a followed record must have. */
export interface Followed<S extends string> {
  uid: string;
  state: S;
  stateHistory: StateEntry<S>[];
  changed: string;
}

/** A state callback: called once per record and state entered. */
export type StateCallback<R> = (record: R, state: string) => void;

/** How far back each poll looks behind its cursor: writes stamped just before a read may land after it. */
const OVERLAP_MS = 2_000;

/**
 * A poll that reads more records than this marks the feed busy: the next poll waits the maximum
 * interval. Every poll re-reads the last OVERLAP_MS of changes, so polling a busy feed every 100 ms
 * reads each change ~20 times (the bench measured 26 reads per unit at 2,000 units); at 1 s it is ~3.
 * A quiet feed (a few units) keeps the minimum interval and its latency.
 */
const BUSY_READS = 200;

/** The poll interval for the first moments after a submission (about ten polls in all). */
const FAST_START = { intervalMs: 20, forMs: 250 };

function rewind(cursor: string, ms: number): string {
  const t = Date.parse(cursor.split('#')[0] ?? '');
  return Number.isNaN(t) ? cursor : new Date(t - ms).toISOString();
}

/** Polls one change feed. */
export class Watcher<S extends string, R extends Followed<S>> {
  readonly records = new Map<string, R>();
  /** Per uid: how many history entries were delivered, and the last one (`state@time`). */
  private readonly delivered = new Map<string, { count: number; last: string }>();
  private readonly callbacks = new Set<StateCallback<R>>();
  private readonly waiters = new Set<() => void>();
  private cursor: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private intervalMs: number;
  /** When the feed last showed a change (or records were seeded): the backoff grows with the quiet since. */
  private movedAt = performance.now();
  private seededAt = Number.NEGATIVE_INFINITY;
  private lastError: unknown;

  constructor(
    /** The feed's pages of changes after `since` (all records when undefined), e.g. {@link Transport.paginate}. */
    private readonly feed: (since: string | undefined) => AsyncIterable<Page<R>>,
    /** Final states: a wait ends when a record reaches one, wanted or not (it will never move again). */
    private readonly finals: readonly S[] = [],
    private readonly minIntervalMs = 100,
    private readonly maxIntervalMs = 1_000,
  ) {
    this.intervalMs = minIntervalMs;
  }

  /** Records known before any poll (e.g. just submitted): their history so far is delivered on the next poll. */
  seed(records: R[]): void {
    for (const r of records) if (!this.records.has(r.uid)) this.records.set(r.uid, r);
    // New records are about to move: poll at the quick interval again, not at the backed-off one left
    // over from an idle spell.
    if (records.length) this.movedAt = this.seededAt = performance.now();
    this.deliver(records);
  }

  register(cb: StateCallback<R>): () => void {
    this.callbacks.add(cb);
    this.ensureRunning();
    return () => {
      this.callbacks.delete(cb);
    };
  }

  /** Polls once now: fetch every change since the cursor, update records, fire callbacks. */
  poll(): Promise<void> {
    if (!this.polling) {
      this.polling = this.pollOnce().finally(() => {
        this.polling = undefined;
      });
    }
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    const since = this.cursor ? rewind(this.cursor, OVERLAP_MS) : undefined;
    let changed = 0;
    let read = 0;
    for await (const page of this.feed(since)) {
      read += page.items.length;
      const fresh: R[] = [];
      for (const r of page.items) {
        const old = this.records.get(r.uid);
        if (old && old.stateHistory.length >= r.stateHistory.length && old.changed >= r.changed) continue;
        this.records.set(r.uid, r);
        fresh.push(r);
      }
      changed += fresh.length;
      this.deliver(fresh);
      if (!this.cursor || page.cursor > this.cursor) this.cursor = page.cursor;
    }
    // Back off while nothing moves, in proportion to how long nothing has moved (a quarter of it), and snap
    // back as soon as something does: a few quick empty polls must not push a change that is about to land
    // out by a long interval. Right after a submission, poll at FAST_START.intervalMs for a moment: short units end within tens of
    // milliseconds, and submit-then-wait is how RP scripts run.
    const now = performance.now();
    if (changed) this.movedAt = now;
    const floor = now - this.seededAt < FAST_START.forMs ? FAST_START.intervalMs : this.minIntervalMs;
    this.intervalMs =
      read > BUSY_READS
        ? this.maxIntervalMs
        : Math.min(this.maxIntervalMs, Math.max(floor, (now - this.movedAt) / 4));
  }

  private deliver(records: R[]): void {
    for (const r of records) {
      const seen = this.delivered.get(r.uid);
      let from = seen?.count ?? 0;
      const key = (e: StateEntry<S> | undefined) => (e ? `${e.state}@${e.time}` : '');
      // A late report can insert a step before the last one (EXECUTING before a FAILED it arrived
      // after): continue after the entry delivered last, so nothing is delivered twice or out of order.
      if (seen && key(r.stateHistory[from - 1]) !== seen.last) {
        const at = r.stateHistory.findLastIndex((e) => key(e) === seen.last);
        if (at >= 0) from = at + 1;
      }
      if (r.stateHistory.length <= from) continue;
      this.delivered.set(r.uid, { count: r.stateHistory.length, last: key(r.stateHistory.at(-1)) });
      for (const entry of r.stateHistory.slice(from)) {
        for (const cb of this.callbacks) {
          try {
            cb(r, entry.state);
          } catch (err) {
            // A user's callback must not kill the poller (RP's default callback once called sys.exit: #2509).
            console.error('sortie: state callback threw:', err);
          }
        }
      }
    }
    for (const w of this.waiters) w();
  }

  private ensureRunning(): void {
    if (this.timer || (this.callbacks.size === 0 && this.waiters.size === 0)) return;
    const tick = () => {
      this.timer = undefined;
      if (this.callbacks.size === 0 && this.waiters.size === 0) return;
      this.poll()
        .then(
          () => {
            this.lastError = undefined;
          },
          (err: unknown) => {
            this.lastError = err;
            this.intervalMs = this.maxIntervalMs;
            for (const w of this.waiters) w();
          },
        )
        .finally(() => {
          if (!this.timer && (this.callbacks.size || this.waiters.size))
            this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  /**
   * Waits until every record selected by `uids` (all known records if undefined) is in one of `states`.
   * `timeoutMs` undefined waits as long as it takes; otherwise throws Timeout naming the laggards.
   */
  async wait(
    uids: string[] | undefined,
    states: readonly S[],
    timeoutMs: number | undefined,
    what: string,
  ): Promise<R[]> {
    const want = new Set<string>(states);
    const pick = () => (uids ?? [...this.records.keys()]).map((u) => this.records.get(u));
    const ready = () =>
      pick().every((r) => r !== undefined && (want.has(r.state) || this.finals.includes(r.state)));
    await this.poll();
    if (ready()) return pick() as R[];
    const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
    return new Promise<R[]>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (err?: unknown) => {
        this.waiters.delete(check);
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(pick() as R[]);
      };
      const check = () => {
        if (ready()) return done();
        if (this.lastError && (this.lastError as { httpStatus?: number }).httpStatus !== undefined) {
          const status = (this.lastError as { httpStatus: number }).httpStatus;
          if (status >= 400 && status < 500) return done(this.lastError);
        }
      };
      if (Number.isFinite(deadline)) {
        timer = setTimeout(() => {
          const late = pick()
            .map((r, i) => (r ? `${r.uid}=${r.state}` : `${uids?.[i]}=unknown`))
            .filter((s) => !want.has(s.split('=')[1] as S));
          done(
            new Timeout(
              `${what}: not in [${states.join(', ')}] after ${timeoutMs} ms: ${late.slice(0, 10).join(', ')}${late.length > 10 ? ` and ${late.length - 10} more` : ''}`,
            ),
          );
        }, deadline - Date.now());
      }
      this.waiters.add(check);
      this.ensureRunning();
    });
  }
}
