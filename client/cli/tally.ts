/**
 * Units per state, and the rate and ETA the progress views print: fed by the SDK's unit callbacks (each
 * state of each unit once, in order), so the counts are the units' latest states.
 */
import { UnitState, unitModel } from '../../core/states.ts';

const FINAL: readonly string[] = [UnitState.DONE, UnitState.FAILED, UnitState.CANCELED];

/** Latest state of each unit, and counts by state. */
export class Tally {
  private readonly states = new Map<string, string>();

  /** Records that `uid` entered `state` (a later callback for the same unit replaces it). */
  set(uid: string, state: string): void {
    this.states.set(uid, state);
  }

  /** True once `uid` has a state. */
  has(uid: string): boolean {
    return this.states.has(uid);
  }

  /** Units known. */
  get size(): number {
    return this.states.size;
  }

  /** Units in a final state. */
  get finished(): number {
    let n = 0;
    for (const s of this.states.values()) if (FINAL.includes(s)) n++;
    return n;
  }

  /** Units per state, in the order of RP's unit model; states without units are left out. */
  counts(): [string, number][] {
    const by = new Map<string, number>();
    for (const s of this.states.values()) by.set(s, (by.get(s) ?? 0) + 1);
    return [...by].sort(
      (a, b) =>
        (unitModel.order[a[0] as UnitState] ?? 99) - (unitModel.order[b[0] as UnitState] ?? 99) ||
        a[0].localeCompare(b[0]),
    );
  }

  /** `Executing 12 · Done 180 · Failed 2`. */
  line(): string {
    return this.counts()
      .map(([s, n]) => `${s} ${n}`)
      .join(' · ');
  }
}

/** Units finished per second since `startMs`, and seconds left at that rate (undefined before the first). */
export function rateAndEta(
  finished: number,
  total: number,
  elapsedMs: number,
): { rate: number; etaSeconds: number | undefined } {
  const rate = elapsedMs > 0 ? finished / (elapsedMs / 1000) : 0;
  return { rate, etaSeconds: rate > 0 ? (total - finished) / rate : undefined };
}

/** `1m05s`, `12s`, `?` for an unknown duration. */
export function formatSeconds(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s)) return '?';
  const whole = Math.round(s);
  if (whole < 60) return `${whole}s`;
  const m = Math.floor(whole / 60);
  if (m < 60) return `${m}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
