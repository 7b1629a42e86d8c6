/** RP's `ComputeUnit`: a handle on one unit; its state lives in the control plane. */
import type { ComputeUnitDescription } from '../core/descriptions.ts';
import { UnitState } from '../core/states.ts';
import type { UnitRecord } from '../core/wire.ts';
import { type HistoryEntry, type LogEntry, logEntries, withTimestamps } from './history.ts';
import type { UnitCallback, UnitManager, WaitUnitsOptions } from './unit-manager.ts';

/** Final unit states: the default of every wait. */
export const UNIT_FINAL: readonly UnitState[] = [UnitState.DONE, UnitState.FAILED, UnitState.CANCELED];

/**
 * A unit (RP's ComputeUnit). Its properties are current while its manager is open: the manager's feed
 * updates the record behind every handle it gave out (RP re-read the database on every access), so
 * `while (unit.state !== DONE)` ends; `refresh()` reads through at once.
 */
export class ComputeUnit {
  constructor(
    readonly unitManager: UnitManager,
    readonly uid: string,
  ) {}

  private get rec(): UnitRecord {
    const r = this.unitManager.record(this.uid);
    if (!r) throw new Error(`unit ${this.uid}: no record loaded yet`);
    return r;
  }

  get name(): string | undefined {
    return this.rec.name;
  }
  get state(): UnitState {
    return this.rec.state;
  }
  /** Every state entered, in order, with `time` (ISO 8601) and RP's `timestamp` (a Date). */
  get stateHistory(): HistoryEntry<UnitState>[] {
    return withTimestamps(this.rec.stateHistory);
  }
  get description(): ComputeUnitDescription {
    return this.rec.description;
  }
  get exitCode(): number | undefined {
    return this.rec.exitCode;
  }
  /** The head of the unit's stdout (up to 4 KiB), as RP keeps it in the unit record. */
  get stdout(): string | undefined {
    return this.rec.stdout;
  }
  get stderr(): string | undefined {
    return this.rec.stderr;
  }
  get log(): string[] {
    return this.rec.log;
  }
  /** The log as RP's entries: each line with its `time` and `timestamp` (prints as the line). */
  get logEntries(): LogEntry[] {
    return logEntries(this.rec.log, this.rec.logTimes);
  }
  get pilotId(): string | undefined {
    return this.rec.pilot;
  }
  /** The unit sandbox on the resource (RP's working_directory). */
  get workingDirectory(): string | undefined {
    return this.rec.sandbox;
  }
  get executionLocations(): string[] {
    return this.rec.execLocations ?? [];
  }
  get submissionTime(): Date | undefined {
    return this.rec.submitted ? new Date(this.rec.submitted) : undefined;
  }
  get startTime(): Date | undefined {
    return this.rec.started ? new Date(this.rec.started) : undefined;
  }
  get stopTime(): Date | undefined {
    return this.rec.finished ? new Date(this.rec.finished) : undefined;
  }
  asDict(): UnitRecord {
    return this.rec;
  }

  /** Re-reads the record now (the manager's feed does it on its own while the manager is open). */
  async refresh(): Promise<this> {
    await this.unitManager.refresh();
    return this;
  }

  /**
   * Waits for one of `state` (default: final states) or a later one; `timeout` in seconds, as RP. Returns
   * the state, also when the time is up (RP), unless `throwOnTimeout`.
   */
  async wait(opts: WaitUnitsOptions = {}): Promise<UnitState> {
    return this.unitManager.waitUnits({ uids: this.uid, ...opts });
  }

  /**
   * Downloads the unit's TRANSFER outputs (again) to their targets on this machine; the SDK also does it
   * by itself when the unit reaches DONE. Returns the paths written. The unit must be DONE.
   */
  async stageOut(): Promise<string[]> {
    return this.unitManager.stageOutUnit(this.uid);
  }

  /** Cancels the unit (no-op when final). */
  async cancel(): Promise<void> {
    await this.unitManager.cancelUnits([this.uid]);
  }

  /** Registers `cb(unit, state, callbackData)` for every state this unit enters. Returns what unregisters it. */
  registerCallback(cb: UnitCallback, callbackData?: unknown): () => void {
    return this.unitManager.registerCallback((u, s) => {
      if (u.uid === this.uid) cb(u, s, callbackData);
    });
  }

  toString(): string {
    return `${this.uid} [${this.unitManager.record(this.uid)?.state ?? '?'}]`;
  }
}
