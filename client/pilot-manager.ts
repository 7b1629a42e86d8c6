/** RP's `PilotManager`: submits, follows and cancels pilots. */

import { type ComputePilotDescriptionInput, parsePilotDescription } from '../core/descriptions.ts';
import { BadParameter } from '../core/errors.ts';
import type { PilotState } from '../core/states.ts';
import type { PilotRecord } from '../core/wire.ts';
import { newRequestToken } from './http.ts';
import { ComputePilot, PILOT_FINAL } from './pilot.ts';
import type { Session } from './session.ts';
import { Watcher } from './watcher.ts';

/** A pilot manager (RP's PilotManager). Create with `await PilotManager.create(session)`. */
export class PilotManager {
  private readonly watcher: Watcher<PilotState, PilotRecord>;
  private readonly handles = new Map<string, ComputePilot>();

  private constructor(
    readonly session: Session,
    readonly uid: string,
  ) {
    this.watcher = new Watcher<PilotState, PilotRecord>(
      (since) => session.transport.paginate<PilotRecord>(session.path('/pilots'), { pmgr: uid, since }),
      PILOT_FINAL,
    );
    session.pilotManagers.set(uid, this);
  }

  /** Creates a pilot manager in the session. */
  static async create(session: Session): Promise<PilotManager> {
    session.assertOpen();
    const r = await session.transport.request<{ uid: string }>(
      'POST',
      session.path('/pmgrs'),
      {},
      undefined,
      { requestToken: newRequestToken() },
    );
    return new PilotManager(session, r.uid);
  }

  /** @internal Re-attaches to an existing manager (reconnect). */
  static attach(session: Session, uid: string): PilotManager {
    return new PilotManager(session, uid);
  }

  /** @internal */
  record(uid: string): PilotRecord | undefined {
    return this.watcher.records.get(uid);
  }

  private handle(uid: string): ComputePilot {
    let p = this.handles.get(uid);
    if (!p) {
      p = new ComputePilot(this, uid);
      this.handles.set(uid, p);
    }
    return p;
  }

  /** Submits one pilot description or many; returns one pilot or many, as given (RP). */
  submitPilots(d: ComputePilotDescriptionInput): Promise<ComputePilot>;
  submitPilots(ds: ComputePilotDescriptionInput[]): Promise<ComputePilot[]>;
  async submitPilots(
    input: ComputePilotDescriptionInput | ComputePilotDescriptionInput[],
  ): Promise<ComputePilot | ComputePilot[]> {
    this.session.assertOpen();
    const list = Array.isArray(input) ? input : [input];
    if (list.length === 0) throw new BadParameter('submitPilots: no pilot descriptions given');
    // Validate here for an early, local error; the API validates again (it trusts no client).
    const descriptions = list.map((d) => parsePilotDescription(d));
    const r = await this.session.transport.request<{ items: PilotRecord[] }>(
      'POST',
      this.session.path('/pilots'),
      { pmgr: this.uid, descriptions },
      undefined,
      { requestToken: newRequestToken() },
    );
    this.watcher.seed(r.items);
    const pilots = r.items.map((p) => this.handle(p.uid));
    return Array.isArray(input) ? pilots : (pilots[0] as ComputePilot);
  }

  /** Uids of this manager's pilots. */
  async listPilots(): Promise<string[]> {
    await this.watcher.poll();
    return [...this.watcher.records.keys()];
  }

  /** Pilot handles (all, or the given uids). */
  async getPilots(uids?: string[]): Promise<ComputePilot[]> {
    await this.watcher.poll();
    const all = uids ?? [...this.watcher.records.keys()];
    for (const u of all)
      if (!this.watcher.records.has(u))
        throw new BadParameter(`getPilots: unknown pilot '${u}' in ${this.uid}`);
    return all.map((u) => this.handle(u));
  }

  /** @internal */
  async refresh(_uids: string[]): Promise<void> {
    await this.watcher.poll();
  }

  /**
   * Waits until the pilots (all by default) reach one of `state` (default: DONE, FAILED, CANCELED)
   * or a final state they can never leave (so waiting for ACTIVE returns when a pilot FAILED);
   * `timeout` in seconds (RP). Returns their states in order.
   */
  async waitPilots(
    opts: { uids?: string[]; state?: PilotState | PilotState[]; timeout?: number } = {},
  ): Promise<PilotState[]> {
    const states =
      opts.state === undefined ? PILOT_FINAL : Array.isArray(opts.state) ? opts.state : [opts.state];
    const recs = await this.watcher.wait(
      opts.uids,
      states,
      opts.timeout === undefined ? undefined : opts.timeout * 1000,
      `waitPilots(${this.uid})`,
    );
    return recs.map((r) => r.state);
  }

  /** Cancels pilots (all by default). Final pilots are left alone. */
  async cancelPilots(uids?: string[]): Promise<void> {
    await this.session.transport.request('POST', this.session.path('/pilots/cancel'), {
      pmgr: this.uid,
      ...(uids ? { uids } : {}),
    });
  }

  /** Calls `cb(pilot, state)` once for every state every pilot of this manager enters, in order. */
  registerCallback(cb: (pilot: ComputePilot, state: PilotState) => void): () => void {
    return this.watcher.register((r, s) => cb(this.handle(r.uid), s as PilotState));
  }

  /** Stops following the feed (callbacks end). */
  close(): void {
    this.session.pilotManagers.delete(this.uid);
  }
}
