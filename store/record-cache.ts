/**
 * A short-lived cache of records read by item key, for the token checks of the routes that run on every
 * unit (an agent's reports, a client's change-feed polls and submissions): without it every such request
 * read its session or pilot item first, one sequential round trip and ~0.4 reads per unit in bulk.
 *
 * An entry is dropped by every write this store makes to its item, before the write is sent and again
 * when it returns, and a read that overlapped such a write is not kept: in one process (the embedded
 * backend, where every handler shares this store) an entry is never stale. A write made elsewhere (another
 * Lambda container) is seen at the latest `maxAgeMs` later; callers choose what may be that stale (see
 * functions/lib/auth.ts for which routes do, and why their writes stay safe).
 */

interface Entry {
  value: unknown;
  at: number;
}

/** Records by item key; see the module note. */
export class RecordCache {
  readonly #entries = new Map<string, Entry>();
  /** Writes seen per key while a read of it is under way (that read keeps its value only if none came). */
  readonly #writes = new Map<string, number>();
  /** Reads in flight per key, so that {@link #writes} is kept only for keys someone reads. */
  readonly #reading = new Map<string, number>();

  constructor(
    /** Largest number of entries kept (oldest dropped first). */
    private readonly maxEntries = 1_000,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /**
   * The record of `key` read at most `maxAgeMs` ago (by this cache, with no write of this store since),
   * else `read()`'s, kept for the next caller. `maxAgeMs` 0 always reads (and keeps what it read).
   */
  async get<T>(key: string, maxAgeMs: number, read: () => Promise<T>): Promise<T> {
    const hit = this.#entries.get(key);
    if (hit && maxAgeMs > 0 && this.clock() - hit.at <= maxAgeMs) return hit.value as T;
    const before = this.#writes.get(key) ?? 0;
    const at = this.clock();
    this.#reading.set(key, (this.#reading.get(key) ?? 0) + 1);
    try {
      const value = await read();
      if ((this.#writes.get(key) ?? 0) === before) {
        this.#entries.delete(key); // re-inserted last: the map's order is the eviction order
        this.#entries.set(key, { value, at });
        if (this.#entries.size > this.maxEntries) {
          const oldest = this.#entries.keys().next().value as string;
          this.#entries.delete(oldest);
        }
      }
      return value;
    } finally {
      const n = (this.#reading.get(key) ?? 1) - 1;
      if (n > 0) this.#reading.set(key, n);
      else {
        // No read left to judge: later reads start from a count of their own.
        this.#reading.delete(key);
        this.#writes.delete(key);
      }
    }
  }

  /** This store writes (or wrote) these items: their entries go, and reads under way are not kept. */
  written(keys: Iterable<string>): void {
    for (const key of keys) {
      this.#entries.delete(key);
      if (this.#reading.has(key)) this.#writes.set(key, (this.#writes.get(key) ?? 0) + 1);
      else this.#writes.delete(key);
    }
  }

  /** Entries kept now (tests). */
  get size(): number {
    return this.#entries.size;
  }
}
