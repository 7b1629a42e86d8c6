/** RP's `ComputePilot`: a handle on one pilot; its state lives in the control plane. */
import type { ComputePilotDescription } from '../core/descriptions.ts';
import { PilotState } from '../core/states.ts';
import type { PilotRecord, StateEntry } from '../core/wire.ts';
import type { PilotManager } from './pilot-manager.ts';

/** Final pilot states: the default of every wait. */
export const PILOT_FINAL: readonly PilotState[] = [PilotState.DONE, PilotState.FAILED, PilotState.CANCELED];

/** A pilot (RP's ComputePilot). Properties show the last known record; `refresh()` or a wait updates it. */
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
  get stateHistory(): StateEntry<PilotState>[] {
    return this.rec.stateHistory;
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

  /** Re-reads the record. */
  async refresh(): Promise<this> {
    await this.pilotManager.refresh([this.uid]);
    return this;
  }

  /** Waits for one of `state` (default: final states); `timeout` in seconds, as RP. Returns the state. */
  async wait(opts: { state?: PilotState | PilotState[]; timeout?: number } = {}): Promise<PilotState> {
    const [s] = await this.pilotManager.waitPilots({ uids: [this.uid], ...opts });
    return s as PilotState;
  }

  /** Cancels the pilot (no-op when final). */
  async cancel(): Promise<void> {
    await this.pilotManager.cancelPilots([this.uid]);
  }

  /** Registers `cb(pilot, state)` for every state this pilot enters. */
  registerCallback(cb: (pilot: ComputePilot, state: PilotState) => void): void {
    this.pilotManager.registerCallback((p, s) => {
      if (p.uid === this.uid) cb(p, s);
    });
  }

  toString(): string {
    return `${this.uid} [${this.pilotManager.record(this.uid)?.state ?? '?'}]`;
  }
}
