/** RP's `PilotManager`: submits, follows and cancels pilots. */

import { type ComputePilotDescriptionInput, parsePilotDescription } from '../core/descriptions.ts';
import { BadParameter, DoesNotExist } from '../core/errors.ts';
import { type PilotState, pilotModel } from '../core/states.ts';
import type { BriefRecord, PilotRecord } from '../core/wire.ts';
import { newRequestToken } from './http.ts';
import { ComputePilot, PILOT_FINAL } from './pilot.ts';
import type { Session } from './session.ts';
import { holdQuery, Watcher } from './watcher.ts';

/** A pilot callback (RP: `cb(pilot, state)`, `[v0.23+]` `cb(pilot, state, callbackData)`). */
export type PilotCallback = (pilot: ComputePilot, state: PilotState, callbackData?: unknown) => void;

/** Options of every pilot wait: RP's `state` and `timeout` (seconds), and Sortie's stricter form. */
export interface WaitPilotsOptions {
  state?: PilotState | PilotState[];
  /** Seconds, as RP; when it is up the states are returned as they are (RP). */
  timeout?: number;
  /** Throw Timeout naming the laggards instead of returning the states. */
  throwOnTimeout?: boolean;
}

/** A pilot manager (RP's PilotManager). Create with `await PilotManager.create(session)`. */
export class PilotManager {
  private readonly watcher: Watcher<PilotState, PilotRecord>;
  private readonly handles = new Map<string, ComputePilot>();
  private closing: Promise<void> | undefined;

  private constructor(
    readonly session: Session,
    readonly uid: string,
  ) {
    this.watcher = new Watcher<PilotState, PilotRecord>(
      (since, hold, known) =>
        session.transport.paginate<PilotRecord | BriefRecord>(session.path('/pilots'), {
          pmgr: uid,
          since,
          known,
          ...holdQuery(hold),
        }),
      PILOT_FINAL,
      (state) => pilotModel.order[state],
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

  /** Pilot handles: all, the given uids, or one handle for one uid (RP: single in, single out). */
  getPilots(uid: string): Promise<ComputePilot>;
  getPilots(uids?: string[]): Promise<ComputePilot[]>;
  async getPilots(uids?: string | string[]): Promise<ComputePilot | ComputePilot[]> {
    await this.watcher.poll();
    const all =
      uids === undefined ? [...this.watcher.records.keys()] : typeof uids === 'string' ? [uids] : uids;
    for (const u of all)
      if (!this.watcher.records.has(u))
        throw new DoesNotExist(`getPilots: unknown pilot ${JSON.stringify(u)} in ${this.uid}`, { obj: u });
    const pilots = all.map((u) => this.handle(u));
    return typeof uids === 'string' ? (pilots[0] as ComputePilot) : pilots;
  }

  /** @internal Reads the feed now: every handle of this manager is current afterwards. */
  async refresh(): Promise<void> {
    await this.watcher.poll();
  }

  /**
   * Waits until the pilots (all by default) reach one of `state` (default: DONE, FAILED, CANCELED), a
   * later one, or a final state they can never leave (so waiting for ACTIVE returns when a pilot FAILED).
   * `timeout` in seconds (RP); when it is up the states are returned as they are, as RP does, unless
   * `throwOnTimeout`. One uid in, one state out; a list or none in, a list out. Unknown uid: DoesNotExist.
   */
  waitPilots(opts: WaitPilotsOptions & { uids: string }): Promise<PilotState>;
  waitPilots(opts?: WaitPilotsOptions & { uids?: string[] }): Promise<PilotState[]>;
  async waitPilots(
    opts: WaitPilotsOptions & { uids?: string | string[] } = {},
  ): Promise<PilotState | PilotState[]> {
    const states =
      opts.state === undefined ? PILOT_FINAL : Array.isArray(opts.state) ? opts.state : [opts.state];
    const recs = await this.watcher.wait(
      typeof opts.uids === 'string' ? [opts.uids] : opts.uids,
      states,
      {
        timeoutMs: opts.timeout === undefined ? undefined : opts.timeout * 1000,
        ...(opts.throwOnTimeout ? { throwOnTimeout: true } : {}),
      },
      `waitPilots(${this.uid})`,
    );
    const out = recs.map((r) => r.state);
    return typeof opts.uids === 'string' ? (out[0] as PilotState) : out;
  }

  /** Cancels pilots: all by default, one uid or a list. Final pilots are left alone. */
  async cancelPilots(uids?: string | string[]): Promise<void> {
    const list = typeof uids === 'string' ? [uids] : uids;
    await this.session.transport.request('POST', this.session.path('/pilots/cancel'), {
      pmgr: this.uid,
      ...(list ? { uids: list } : {}),
    });
  }

  /**
   * Calls `cb(pilot, state, callbackData)` once for every state every pilot of this manager enters, in
   * order (RP `register_callback(cb, callback_data)`). Returns what unregisters it.
   */
  registerCallback(cb: PilotCallback, callbackData?: unknown): () => void {
    return this.watcher.register((r, s) => cb(this.handle(r.uid), s as PilotState, callbackData));
  }

  /** RP's `as_dict()`: what identifies this manager. */
  asDict(): { uid: string; session: string } {
    return { uid: this.uid, session: this.session.uid };
  }

  /**
   * Closes the manager (RP `close(terminate=True)`): with `terminate` (the default, as RP) it cancels its
   * pilots and waits for them to end (`timeout` seconds, default 60); then it stops following the feed, so
   * no callback fires and no timer is left. Safe to call twice.
   */
  close(opts: { terminate?: boolean; timeout?: number } = {}): Promise<void> {
    this.closing ??= this.doClose(opts);
    return this.closing;
  }

  private async doClose(opts: { terminate?: boolean; timeout?: number }): Promise<void> {
    try {
      if ((opts.terminate ?? true) && !this.session.closed) {
        await this.cancelPilots();
        await this.waitPilots({ timeout: opts.timeout ?? 60, throwOnTimeout: true });
      }
    } finally {
      this.watcher.close();
      this.session.pilotManagers.delete(this.uid);
    }
  }
}
