/** RP's `ComputePilot`: a handle on one pilot; its state lives in the control plane. */
import type { ComputePilotDescription } from '../core/descriptions.ts';
import { NotImplemented } from '../core/errors.ts';
import type { StagingDirectiveInput } from '../core/staging.ts';
import { PilotState } from '../core/states.ts';
import type { PilotRecord } from '../core/wire.ts';
import { type HistoryEntry, type LogEntry, logEntries, withTimestamps } from './history.ts';
import type { PilotCallback, PilotManager, WaitPilotsOptions } from './pilot-manager.ts';
import { stagePilot } from './pilot-staging.ts';

/** Final pilot states: the default of every wait. */
export const PILOT_FINAL: readonly PilotState[] = [PilotState.DONE, PilotState.FAILED, PilotState.CANCELED];

/**
 * A pilot (RP's ComputePilot). Its properties are current while its manager is open: the manager's feed
 * updates the record behind every handle it gave out (RP re-read the database on every access);
 * `refresh()` reads through at once.
 */
export class ComputePilot {
  constructor(
    readonly pilotManager: PilotManager,
    readonly uid: string,
  ) {}

  private get rec(): PilotRecord {
    const r = this.pilotManager.record(this.uid);
    if (!r) throw new Error(`pilot ${this.uid}: no record loaded yet`);
    return r;
  }

  get state(): PilotState {
    return this.rec.state;
  }
  /** Every state entered, in order, with `time` (ISO 8601) and RP's `timestamp` (a Date). */
  get stateHistory(): HistoryEntry<PilotState>[] {
    return withTimestamps(this.rec.stateHistory);
  }
  get description(): ComputePilotDescription {
    return this.rec.description;
  }
  get resource(): string {
    return this.rec.resource;
  }
  /** Pilot log lines: launch, activation, and on failure the reason and the agent's last output. */
  get log(): string[] {
    return this.rec.log;
  }
  /** The log as RP's entries: each line with its `time` and `timestamp` (prints as the line). */
  get logEntries(): LogEntry[] {
    return logEntries(this.rec.log, this.rec.logTimes);
  }
  get sandbox(): string | undefined {
    return this.rec.sandbox;
  }
  get resourceDetail(): PilotRecord['resourceDetail'] {
    return this.rec.resourceDetail;
  }
  get jobId(): string | undefined {
    return this.rec.jobId;
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
  /** The whole record, as the API returned it. */
  asDict(): PilotRecord {
    return this.rec;
  }

  /** RP: not implemented on a pilot (ask a unit manager for its pilots instead). */
  get unitManagers(): never {
    throw new NotImplemented('ComputePilot.unitManagers is not implemented (as in RP)', { obj: this.uid });
  }
  /** RP: not implemented on a pilot (ask its unit manager for its units instead). */
  get units(): never {
    throw new NotImplemented('ComputePilot.units is not implemented (as in RP)', { obj: this.uid });
  }

  /** Re-reads the record now (the manager's feed does it on its own while the manager is open). */
  async refresh(): Promise<this> {
    await this.pilotManager.refresh();
    return this;
  }

  /**
   * Waits for one of `state` (default: final states) or a later one; `timeout` in seconds, as RP. Returns
   * the state, also when the time is up (RP), unless `throwOnTimeout`.
   */
  async wait(opts: WaitPilotsOptions = {}): Promise<PilotState> {
    return this.pilotManager.waitPilots({ uids: this.uid, ...opts });
  }

  /** Cancels the pilot (no-op when final). */
  async cancel(): Promise<void> {
    await this.pilotManager.cancelPilots([this.uid]);
  }

  /**
   * RP's `stage_in`: files into the pilot's staging area (`staging:///`), where its units LINK or COPY
   * them from. Directives as for units (objects, lists, `'a > b'`); a relative target is in the staging
   * area; TRANSFER (the default) sends a file of this machine, COPY/LINK/MOVE a file of the resource.
   * Waits for the pilot to be launched; its agent does the staging (see client/pilot-staging.ts).
   * @throws IncorrectState on a final pilot, NoSuccess naming the file and the cause, BadParameter
   */
  async stageIn(directives: StagingDirectiveInput | StagingDirectiveInput[]): Promise<void> {
    await stagePilot(this, directives, 'in');
  }

  /**
   * RP 1.x's `stage_out`: files out of the pilot's staging area (a relative source is in it), e.g. to this
   * machine with TRANSFER. Same rules and errors as {@link stageIn}.
   */
  async stageOut(directives: StagingDirectiveInput | StagingDirectiveInput[]): Promise<void> {
    await stagePilot(this, directives, 'out');
  }

  /** Registers `cb(pilot, state, callbackData)` for every state this pilot enters. Returns what unregisters it. */
  registerCallback(cb: PilotCallback, callbackData?: unknown): () => void {
    return this.pilotManager.registerCallback((p, s) => {
      if (p.uid === this.uid) cb(p, s, callbackData);
    });
  }

  toString(): string {
    return `${this.uid} [${this.pilotManager.record(this.uid)?.state ?? '?'}]`;
  }
}
