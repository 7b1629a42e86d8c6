/**
 * Change-feed long polls: a list route asked to `wait` holds its answer until a record of the feed
 * changed after the client's cursor, or the wait is over. It re-reads the feed at most every
 * {@link RECHECK_MS}; a write made by this same process (the store's observer sees every one, with the
 * feed's byParent partition) wakes it at once. Deployed, each Lambda sees only its own writes, so a
 * change made elsewhere is seen within RECHECK_MS, i.e. a long poll is never worse than the client's
 * own polling was; the embedded backend runs every handler in one process, so there every change wakes it.
 */
import { BadParameter } from '../../core/errors.ts';
import type { BriefRecord, Page } from '../../core/wire.ts';

/** Longest hold a client may ask for: well under API Gateway's 30 s integration timeout. */
export const MAX_WAIT_MS = 20_000;

/** How often a held request re-reads its feed when no local write wakes it. */
export const RECHECK_MS = 100;

/**
 * Per byParent partition that some request of this process held: how many writes this process saw since
 * (all of them, and those that left a record in a final state), and who waits for the next one (with
 * whether only a final state wakes it). Entries stay (one small entry per feed ever held here).
 */
const feeds = new Map<string, { version: number; finals: number; waiters: Map<() => void, boolean> }>();

function feed(parent: string) {
  let f = feeds.get(parent);
  if (!f) {
    f = { version: 0, finals: 0, waiters: new Map() };
    feeds.set(parent, f);
  }
  return f;
}

/**
 * The store observer's hook: an item of this partition was written; `final` false when no record it wrote
 * is in a final state (a hold for final states sleeps on), true or absent when one may be.
 */
export function feedWritten(parent: string, final?: boolean): void {
  const f = feeds.get(parent);
  if (!f) return; // never held in this process: nothing to wake
  f.version++;
  if (final !== false) f.finals++;
  for (const [w, finalOnly] of f.waiters) if (final !== false || !finalOnly) w();
}

/** Bumped by {@link releaseHolds}: a hold begun before the bump stops holding. */
let generation = 0;

/**
 * Ends every hold of this process now: each held request returns the page it read last instead of
 * re-reading its feed until the hold is over. The embedded backend calls it as it closes, before its API:
 * a held request used to go on re-reading a table that was shutting down (and logged the failure).
 */
export function releaseHolds(): void {
  generation++;
  for (const f of feeds.values()) for (const w of [...f.waiters.keys()]) w();
}

/** Requests of this process held on `parent`'s feed right now (tests wait on it; nothing else reads it). */
export function heldOn(parent: string): number {
  return feeds.get(parent)?.waiters.size ?? 0;
}

/** The feed's count of writes a hold wakes on: all of them, or (`finalOnly`) those into final states. */
const versionOf = (parent: string, finalOnly: boolean) => {
  const f = feed(parent);
  return finalOnly ? f.finals : f.version;
};

/** Resolves when `parent` was written (into a final state, `finalOnly`) after `version`, or after `ms`. */
function writtenSince(parent: string, version: number, ms: number, finalOnly: boolean): Promise<void> {
  const f = feed(parent);
  if (versionOf(parent, finalOnly) !== version) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      f.waiters.delete(done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    f.waiters.set(done, finalOnly);
  });
}

/** What a held list request waits for. */
export interface Hold {
  /** Milliseconds to hold at most. */
  ms: number;
  /** The client's cursor: any record changed after it ends the hold ('' : any record at all). */
  newer: string;
  /**
   * `until=final`: only a record that changed after `newer` into a final state ends the hold (a client
   * whose waits are all for final states, with no callback to feed); the page still carries every change.
   */
  final?: boolean;
}

/**
 * `wait` (and `newer`, the client's cursor: absent, any record ends the hold; `until=final`) of a list request.
 * @throws BadParameter naming the field and the value
 */
export function parseHold(query: Record<string, string | undefined>): Hold | undefined {
  const { wait, newer, until } = query;
  if (until !== undefined && until !== 'final')
    throw new BadParameter(`until: must be "final" or absent, got ${JSON.stringify(until)}`);
  if (wait === undefined) return undefined;
  const ms = /^[0-9]+$/.test(wait) ? Number(wait) : Number.NaN;
  if (!(ms >= 1 && ms <= MAX_WAIT_MS))
    throw new BadParameter(
      `wait: must be a whole number of milliseconds from 1 to ${MAX_WAIT_MS}, got ${JSON.stringify(wait)}`,
    );
  return { ms, newer: newer ?? '', ...(until === 'final' ? { final: true } : {}) };
}

/**
 * The first page of a feed, held (see the module note) until it shows a record changed after
 * `hold.newer` (into a final state, by `isFinal`, with `hold.final`), or has more pages (a busy feed), or
 * the hold is over. Without a hold: the page at once.
 */
export async function heldPage<R extends { changed?: string; state: string }>(
  parent: string,
  hold: Hold | undefined,
  list: () => Promise<Page<R>>,
  isFinal: (state: string) => boolean,
): Promise<Page<R>> {
  const ends = (r: R) => (r.changed ?? '') > (hold?.newer ?? '') && (!hold?.final || isFinal(r.state));
  const deadline = performance.now() + (hold?.ms ?? 0);
  const begun = generation;
  for (;;) {
    // The version is taken before the read: a write landing between the read and the wait still wakes it.
    const version = versionOf(parent, hold?.final === true);
    const page = await list();
    const left = deadline - performance.now();
    if (!hold || page.next || left <= 0 || page.items.some(ends)) {
      return page;
    }
    await writtenSince(parent, version, Math.min(left, RECHECK_MS), hold.final === true);
    if (generation !== begun) return page;
  }
}

/**
 * `known` of a list request: the client's cursor, when it asks for the records it has read (changed at or
 * before it) in brief ({@link BriefRecord}).
 * @throws BadParameter naming the field and the value
 */
export function parseKnown(query: Record<string, string | undefined>): string | undefined {
  const { known } = query;
  // '' is an empty feed's cursor: nothing was read, so nothing comes in brief.
  if (known === undefined || known === '') return undefined;
  if (known.length > 256)
    throw new BadParameter(
      `known: must be a change cursor of at most 256 characters, got ${JSON.stringify(known.slice(0, 80))}…`,
    );
  return known;
}

/**
 * A feed page's items for the wire: those changed at or before `known` in brief, the others whole
 * (`out`). Without `known`, all whole.
 */
export function briefPage<R extends { uid: string; changed?: string; stateHistory: unknown[] }, O>(
  items: readonly R[],
  known: string | undefined,
  out: (r: R) => O,
): (O | BriefRecord)[] {
  return items.map((r) =>
    known !== undefined && r.changed !== undefined && r.changed <= known
      ? { uid: r.uid, changed: r.changed, entries: r.stateHistory.length, brief: true as const }
      : out(r),
  );
}
