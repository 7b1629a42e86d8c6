/**
 * Follows a manager's change feed (pilots of a pmgr, units of a umgr) and turns it into RP's semantics:
 * every state a record enters is delivered to callbacks exactly once and in order (from its state
 * history, so skipped or coalesced updates are still seen — RP issues #72 and #316), waits return as
 * soon as their records reach a wanted state, and the records behind every handle stay current (RP's
 * properties re-read the database). One poller per manager serves all of it. Its timer keeps the process
 * alive only while a wait or a callback listens; following handles alone never does (an RP script that
 * forgets `close()` still exits), and `close()` stops it for good.
 */
import { DoesNotExist, IncorrectState, Timeout } from '../core/errors.ts';
import type { BriefRecord, Page, StateEntry } from '../core/wire.ts';

/** What a followed record must have. */
export interface Followed<S extends string> {
  uid: string;
  state: S;
  stateHistory: StateEntry<S>[];
  changed: string;
}

/**
 * A long poll: the feed holds its answer up to `ms` until a record changed after `newer` (with `final`:
 * into a final state).
 */
export interface FeedHold {
  ms: number;
  newer: string;
  final?: boolean;
}

/** The list routes' query parameters of a hold (none without one). */
export function holdQuery(hold: FeedHold | undefined): { wait?: string; newer?: string; until?: string } {
  return hold ? { wait: String(hold.ms), newer: hold.newer, ...(hold.final ? { until: 'final' } : {}) } : {};
}

/** A state callback: called once per record and state entered. */
export type StateCallback<R> = (record: R, state: string) => void;

/** One state entered, as delivered (in the record's history order). */
export interface Entered<R> {
  record: R;
  state: string;
  time: string;
}

/** How a wait ends when its time is up: RP returns the states as they are; Sortie can throw instead. */
export interface WaitOptions {
  /** Milliseconds (the SDK's waits take RP's seconds and convert); undefined waits as long as it takes. */
  timeoutMs: number | undefined;
  /** Throw Timeout naming the laggards instead of returning (Sortie's stricter form). */
  throwOnTimeout?: boolean;
}

/** How far back each poll looks behind its cursor: writes stamped just before a read may land after it. */
const OVERLAP_MS = 2_000;

/**
 * A poll that reads more records than this marks the feed busy: the next poll waits the maximum
 * interval. Every poll re-reads the last OVERLAP_MS of changes, so polling a busy feed every 100 ms
 * reads each change ~20 times (the bench measured 26 reads per unit at 2,000 units); at 1 s it is ~3.
 * A quiet feed (a few units) keeps the minimum interval and its latency.
 */
const BUSY_READS = 200;

/**
 * A poll that found changes but read no more records than this was a quiet feed (a few units moving):
 * the next poll is held at once (a change lands → seen), which costs little at this size. More, and the
 * next poll waits the interval first, so a steadily moving feed is not re-read back to back.
 */
const QUIET_READS = 50;

/**
 * Polls are held only this long after the feed last moved: then a change is likely and its latency
 * matters. Deployed, a held request bills its Lambda for the whole hold (512 MB: ~$0.024 per hour held,
 * ~6× a plain poll per second), so a feed quiet for longer goes back to plain polls at the backed-off
 * interval (at most {@link Watcher} `maxIntervalMs` late, as before long polls).
 */
const HOLD_AFTER_MOVE_MS = 10_000;

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
  private readonly batchListeners = new Set<(entered: Entered<R>[]) => void>();
  private readonly waiters = new Set<(closed?: boolean) => void>();
  /** Waits running for a state short of final (EXECUTING…): polls must not hold for final states only. */
  private eager = 0;
  private closed = false;
  /** A chain of poll timers is running (see ensureRunning). */
  private chain = false;
  private cursor: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Re-arms the running chain's timer (set while a chain runs). */
  private rearm: ((ms: number) => void) | undefined;
  private polling: Promise<void> | undefined;
  /**
   * The last poll found nothing new, or little (see {@link QUIET_READS}): the next one, when someone
   * listens, is a long poll that the API holds until something changes, rather than a poll after an interval.
   */
  private holdNext = false;
  /** Held polls in flight that end at a final state only (see {@link pollHeld}). */
  private finalHolds = 0;
  /** A held poll for every state, run beside a final-only one (see {@link widen}). */
  private widening: Promise<void> | undefined;
  private intervalMs: number;
  /** When the feed last showed a change (or records were seeded): the backoff grows with the quiet since. */
  private movedAt = performance.now();
  private seededAt = Number.NEGATIVE_INFINITY;
  private lastError: unknown;

  constructor(
    /**
     * The feed's pages of changes after `since` (all records when undefined), e.g. {@link Transport.paginate};
     * with `hold`, the first page is a long poll (functions/lib/changes.ts).
     */
    private readonly feed: (
      since: string | undefined,
      hold?: FeedHold,
      /** The cursor up to which the client read the feed: records changed up to it may come in brief. */
      known?: string,
    ) => AsyncIterable<Page<R | BriefRecord>>,
    /** Final states: a wait ends when a record reaches one, wanted or not (it will never move again). */
    private readonly finals: readonly S[] = [],
    /** Rank of a state in its model: a wait for a state is over once a record reached it or went past it. */
    private readonly rank: (s: S) => number = () => 0,
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
    this.ensureRunning();
  }

  /**
   * Something that moves records was just asked (a cancel): poll at the quick interval again from now,
   * not at the backed-off one of a quiet feed, so the change is seen soon after it lands.
   */
  expectChange(): void {
    this.movedAt = performance.now();
    this.intervalMs = this.minIntervalMs;
    if (this.timer && this.rearm) {
      clearTimeout(this.timer);
      this.rearm(this.minIntervalMs);
    }
    this.ensureRunning();
  }

  /** Listens to every batch of states entered (in delivery order), e.g. to count a queue. */
  onEntered(listener: (entered: Entered<R>[]) => void): () => void {
    this.batchListeners.add(listener);
    return () => {
      this.batchListeners.delete(listener);
    };
  }

  /**
   * Stops for good: no more polls, callbacks or listeners; pending waits fail with IncorrectState (nothing
   * would ever end them). RP's managers end their polling threads in `close()` the same way.
   */
  close(): void {
    this.closed = true;
    this.chain = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.callbacks.clear();
    this.batchListeners.clear();
    for (const w of [...this.waiters]) w(true);
    this.waiters.clear();
  }

  /** True while some known record is not final: its handle's properties must keep moving. */
  private following(): boolean {
    for (const r of this.records.values()) if (!this.finals.includes(r.state)) return true;
    return false;
  }

  register(cb: StateCallback<R>): () => void {
    if (this.closed) throw new IncorrectState('registerCallback: the manager is closed');
    this.callbacks.add(cb);
    this.ensureRunning();
    this.widen();
    return () => {
      this.callbacks.delete(cb);
    };
  }

  /** Polls once now: fetch every change since the cursor, update records, fire callbacks. */
  poll(): Promise<void> {
    if (!this.polling) {
      this.polling = this.pollOnce().finally(() => {
        this.polling = undefined;
        // A manager re-attached by hand learns its records here: follow them from now on.
        this.ensureRunning();
      });
    }
    return this.polling;
  }

  /**
   * A long poll (see {@link holdNext}): apart from {@link poll}, so that a wait asking for a fresh read
   * does not sit behind a held request. Two polls at once are safe: older copies of a record are dropped.
   */
  private pollHeld(): Promise<void> {
    // Nobody needs a state short of final now (no callback, every wait is for final states): the hold
    // ends at a final state only, not at each state on the way (one poll per unit instead of several).
    const final = this.callbacks.size === 0 && this.eager === 0;
    if (final) this.finalHolds++;
    return this.pollOnce({
      ms: this.maxIntervalMs,
      newer: this.cursor ?? '',
      ...(final ? { final } : {}),
    }).finally(() => {
      if (final) this.finalHolds--;
    });
  }

  /**
   * Someone now wants states short of final (a callback, a wait for EXECUTING) while a poll is held for
   * final states only: that poll would hand them their next state only when it returns, up to the hold
   * (`maxIntervalMs`) late. Hold a poll for every state beside it, and again while it keeps finding
   * changes and the final-only one is still held. A held poll that ends empty or fails is not repeated
   * here: the chain's own next poll (wide now) follows, with its backoff.
   */
  private widen(): void {
    if (this.widening || this.closed || this.finalHolds === 0) return;
    if (this.callbacks.size === 0 && this.eager === 0) return;
    const moved = this.movedAt;
    this.widening = this.pollHeld().then(
      () => {
        this.widening = undefined;
        if (this.movedAt !== moved) this.widen();
      },
      () => {
        this.widening = undefined;
      },
    );
  }

  /**
   * A wait began on records known already: poll held at once (the chain's next poll, whose timer may run
   * up to the interval, is brought forward), rather than read the feed first and then hold.
   */
  private holdNow(): void {
    this.holdNext = true;
    if (this.chain && this.timer && this.rearm) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.rearm(0);
    }
    this.ensureRunning();
  }

  private async pollOnce(hold?: FeedHold): Promise<void> {
    const since = this.cursor ? rewind(this.cursor, OVERLAP_MS) : undefined;
    let changed = 0;
    let read = 0;
    // The overlap behind the cursor holds records read before: they come in brief, and a brief of a record
    // this client does not hold as new (a write that became visible late) has the window read again whole.
    let lacking = false;
    const take = async (known: string | undefined, h: FeedHold | undefined) => {
      for await (const page of this.feed(since, h, known)) {
        read += page.items.length;
        const fresh: R[] = [];
        for (const r of page.items) {
          const old = this.records.get(r.uid);
          const entries = 'brief' in r ? r.entries : r.stateHistory.length;
          if (old && old.stateHistory.length >= entries && old.changed >= r.changed) continue;
          if ('brief' in r) {
            lacking = true;
            continue;
          }
          this.records.set(r.uid, r);
          fresh.push(r);
        }
        changed += fresh.length;
        this.deliver(fresh);
        if (!this.cursor || page.cursor > this.cursor) this.cursor = page.cursor;
      }
    };
    await take(this.cursor, hold);
    if (lacking) await take(undefined, undefined);
    // Back off while nothing moves, in proportion to how long nothing has moved (a quarter of it), and snap
    // back as soon as something does: a few quick empty polls must not push a change that is about to land
    // out by a long interval. Right after a submission, poll at FAST_START.intervalMs for a moment: short units end within tens of
    // milliseconds, and submit-then-wait is how RP scripts run.
    const now = performance.now();
    if (changed) this.movedAt = now;
    this.holdNext = now - this.movedAt < HOLD_AFTER_MOVE_MS && read <= (changed ? QUIET_READS : BUSY_READS);
    const floor = now - this.seededAt < FAST_START.forMs ? FAST_START.intervalMs : this.minIntervalMs;
    this.intervalMs =
      read > BUSY_READS
        ? this.maxIntervalMs
        : Math.min(this.maxIntervalMs, Math.max(floor, (now - this.movedAt) / 4));
  }

  private deliver(records: R[]): void {
    const entered: Entered<R>[] = [];
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
        entered.push({ record: r, state: entry.state, time: entry.time });
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
    if (entered.length)
      for (const l of this.batchListeners) {
        try {
          l(entered);
        } catch (err) {
          console.error('sortie: callback threw:', err);
        }
      }
    for (const w of this.waiters) w();
  }

  /** Someone waits or listens: the process must stay up for them. */
  private listened(): boolean {
    return this.callbacks.size > 0 || this.waiters.size > 0;
  }

  /**
   * Polls while anyone listens or any handle may still move; the timer holds the process only for
   * listeners. One chain of timers at a time (`chain`), so a poll started by hand never doubles it.
   */
  private ensureRunning(): void {
    if (this.closed) return;
    if (this.chain) {
      // A listener arrived while only handles were followed: from now on the timer must hold the process.
      if (this.listened()) this.timer?.ref();
      return;
    }
    if (!this.listened() && !this.following()) return;
    this.chain = true;
    const idle = () => this.closed || (!this.listened() && !this.following());
    const schedule = (ms: number) => {
      this.timer = setTimeout(tick, ms);
      if (!this.listened()) this.timer.unref();
    };
    this.rearm = schedule;
    const tick = () => {
      this.timer = undefined;
      if (idle()) {
        this.chain = false;
        return;
      }
      // Only a listener's poll is held: a held request keeps the process up, like the listener's timer.
      const held = this.holdNext && this.listened();
      (held ? this.pollHeld() : this.poll())
        .then(
          () => {
            this.lastError = undefined;
          },
          (err: unknown) => {
            this.lastError = err;
            this.holdNext = false;
            this.intervalMs = this.maxIntervalMs;
            for (const w of this.waiters) w();
          },
        )
        .finally(() => {
          if (idle()) this.chain = false;
          // Quiet: ask again at once, held (the hold is the interval); else after the interval.
          else schedule(this.holdNext && this.listened() ? 0 : this.intervalMs);
        });
    };
    schedule(0);
  }

  /**
   * Waits until every record selected by `uids` (all known records if undefined) reached one of `states`
   * or went past it (RP: a wait for EXECUTING is over when the unit is DONE), or is final (it will never
   * move again). An id this manager does not know raises DoesNotExist (RP), never a wait that cannot end.
   * When the time is up, returns the records as they are (RP), or throws Timeout with `throwOnTimeout`.
   */
  async wait(
    uids: string[] | undefined,
    states: readonly S[],
    opts: WaitOptions,
    what: string,
  ): Promise<R[]> {
    if (this.closed) throw new IncorrectState(`${what}: the manager is closed`);
    const want = new Set<string>(states);
    const wanted = states.filter((s) => !this.finals.includes(s));
    // The least advanced wanted state: a record before it has not got there yet.
    const reach = wanted.length ? Math.min(...wanted.map((s) => this.rank(s))) : Number.POSITIVE_INFINITY;
    const pick = () => (uids ?? [...this.records.keys()]).map((u) => this.records.get(u));
    const arrived = (r: R) =>
      want.has(r.state) || this.finals.includes(r.state) || this.rank(r.state) >= reach;
    const ready = () => pick().every((r) => r !== undefined && arrived(r));
    // Records all known (the SDK's handles: submitted or listed through this manager): their wait goes
    // straight to a held poll, which answers at once when they changed since the cursor. Otherwise read
    // the feed first: that finds ids this manager does not know, and records nobody here has seen.
    const known = uids?.every((u) => this.records.has(u)) === true;
    if (!known) await this.poll();
    const unknown = (uids ?? []).filter((u) => !this.records.has(u));
    if (unknown.length) {
      throw new DoesNotExist(
        `${what}: unknown id${unknown.length > 1 ? 's' : ''} ${unknown.slice(0, 10).join(', ')}`,
        {
          obj: unknown[0] as string,
        },
      );
    }
    if (ready()) return pick() as R[];
    const timeoutMs = opts.timeoutMs;
    return new Promise<R[]>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const eager = wanted.length > 0;
      if (eager) this.eager++;
      let settled = false;
      const done = (err?: unknown) => {
        if (settled) return;
        settled = true;
        if (eager) this.eager--;
        this.waiters.delete(check);
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(pick() as R[]);
      };
      const check = (closed?: boolean) => {
        if (closed) return done(new IncorrectState(`${what}: the manager was closed while waiting`));
        if (ready()) return done();
        if (this.lastError && (this.lastError as { httpStatus?: number }).httpStatus !== undefined) {
          const status = (this.lastError as { httpStatus: number }).httpStatus;
          if (status >= 400 && status < 500) return done(this.lastError);
        }
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          if (!opts.throwOnTimeout) return done();
          const late = pick()
            .filter((r): r is R => r !== undefined && !arrived(r))
            .map((r) => `${r.uid}=${r.state}`);
          done(
            new Timeout(
              `${what}: not in [${states.join(', ')}] after ${timeoutMs / 1000} s: ${late.slice(0, 10).join(', ')}${late.length > 10 ? ` and ${late.length - 10} more` : ''}`,
            ),
          );
        }, timeoutMs);
      }
      this.waiters.add(check);
      if (known) this.holdNow();
      else this.ensureRunning();
      if (eager) this.widen();
    });
  }
}
