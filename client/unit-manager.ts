/** RP's `UnitManager`: binds units to pilots through a scheduler, follows and cancels them. */

import { type ComputeUnitDescriptionInput, parseUnitDescriptions } from '../core/descriptions.ts';
import { BadParameter } from '../core/errors.ts';
import type { UnitState } from '../core/states.ts';
import type { UnitRecord } from '../core/wire.ts';
import { newRequestToken } from './http.ts';
import type { ComputePilot } from './pilot.ts';
import type { Session } from './session.ts';
import { ComputeUnit, UNIT_FINAL } from './unit.ts';
import { Watcher } from './watcher.ts';

/** Scheduler names (RP's SCHED_* constants). */
export { SCHEDULERS, type SchedulerName } from '../core/schedulers.ts';

import { SCHEDULERS, type SchedulerName } from '../core/schedulers.ts';
export const SCHED_DIRECT_SUBMISSION = 'direct_submission';
export const SCHED_ROUND_ROBIN = 'round_robin';
export const SCHED_BACKFILLING = 'backfilling';

/** Units sent per submit request: keeps each request far below API Gateway's 10 MB body limit. */
const SUBMIT_CHUNK = 2_000;

/** A unit manager (RP's UnitManager). Create with `await UnitManager.create(session, scheduler)`. */
export class UnitManager {
  private readonly watcher: Watcher<UnitState, UnitRecord>;
  private readonly handles = new Map<string, ComputeUnit>();
  private readonly unsubscribe: (() => void)[] = [];

  private constructor(
    readonly session: Session,
    readonly uid: string,
    readonly scheduler: SchedulerName,
  ) {
    this.watcher = new Watcher<UnitState, UnitRecord>(
      (since) => session.transport.paginate<UnitRecord>(session.path(`/umgrs/${uid}/units`), { since }),
      UNIT_FINAL,
    );
    session.unitManagers.set(uid, this);
  }

  /** Creates a unit manager; `scheduler` is required, as in RP. */
  static async create(session: Session, scheduler: SchedulerName): Promise<UnitManager> {
    session.assertOpen();
    if (!SCHEDULERS.includes(scheduler)) {
      throw new BadParameter(
        `UnitManager.scheduler: must be one of ${SCHEDULERS.join(', ')}, got ${JSON.stringify(scheduler)}`,
      );
    }
    const r = await session.transport.request<{ uid: string }>(
      'POST',
      session.path('/umgrs'),
      { scheduler },
      undefined,
      { requestToken: newRequestToken() },
    );
    return new UnitManager(session, r.uid, scheduler);
  }

  /** @internal Re-attaches to an existing manager (reconnect). */
  static async attach(session: Session, uid: string): Promise<UnitManager> {
    const r = await session.transport.request<{ uid: string; scheduler: SchedulerName }>(
      'GET',
      session.path(`/umgrs/${uid}`),
    );
    return new UnitManager(session, r.uid, r.scheduler);
  }

  /** @internal */
  record(uid: string): UnitRecord | undefined {
    return this.watcher.records.get(uid);
  }

  private handle(uid: string): ComputeUnit {
    let u = this.handles.get(uid);
    if (!u) {
      u = new ComputeUnit(this, uid);
      this.handles.set(uid, u);
    }
    return u;
  }

  /** Adds pilots (handles or uids) to this manager's scheduler. */
  async addPilots(pilots: ComputePilot | string | (ComputePilot | string)[]): Promise<void> {
    const list = (Array.isArray(pilots) ? pilots : [pilots]).map((p) => (typeof p === 'string' ? p : p.uid));
    await this.session.transport.request('POST', this.session.path(`/umgrs/${this.uid}/pilots`), {
      pilots: list,
    });
  }

  /** Uids of the pilots added to this manager. */
  async listPilots(): Promise<string[]> {
    const r = await this.session.transport.request<{ pilots: string[] }>(
      'GET',
      this.session.path(`/umgrs/${this.uid}`),
    );
    return r.pilots;
  }

  /** Submits one unit description or many; returns one unit or many, as given (RP). */
  submitUnits(d: ComputeUnitDescriptionInput): Promise<ComputeUnit>;
  submitUnits(ds: ComputeUnitDescriptionInput[]): Promise<ComputeUnit[]>;
  async submitUnits(
    input: ComputeUnitDescriptionInput | ComputeUnitDescriptionInput[],
  ): Promise<ComputeUnit | ComputeUnit[]> {
    this.session.assertOpen();
    const list = Array.isArray(input) ? input : [input];
    if (list.length === 0) throw new BadParameter('submitUnits: no unit descriptions given');
    const descriptions = parseUnitDescriptions(list);
    const units: ComputeUnit[] = [];
    for (let i = 0; i < descriptions.length; i += SUBMIT_CHUNK) {
      const r = await this.session.transport.request<{ items: UnitRecord[] }>(
        'POST',
        this.session.path(`/umgrs/${this.uid}/units`),
        { descriptions: descriptions.slice(i, i + SUBMIT_CHUNK) },
        undefined,
        // One token per chunk: a retried chunk is created once, the next chunk is a new request.
        { requestToken: newRequestToken() },
      );
      this.watcher.seed(r.items);
      for (const u of r.items) units.push(this.handle(u.uid));
    }
    return Array.isArray(input) ? units : (units[0] as ComputeUnit);
  }

  async listUnits(): Promise<string[]> {
    await this.watcher.poll();
    return [...this.watcher.records.keys()];
  }

  async getUnits(uids?: string[]): Promise<ComputeUnit[]> {
    await this.watcher.poll();
    const all = uids ?? [...this.watcher.records.keys()];
    for (const u of all)
      if (!this.watcher.records.has(u))
        throw new BadParameter(`getUnits: unknown unit '${u}' in ${this.uid}`);
    return all.map((u) => this.handle(u));
  }

  /**
   * Waits until the units (all by default) reach one of `state` (default: DONE, FAILED, CANCELED)
   * or a final state they can never leave (so waiting for ACTIVE returns when a pilot FAILED);
   * `timeout` in seconds (RP). Returns their states in order. Throws Timeout naming the laggards.
   */
  async waitUnits(
    opts: { uids?: string[]; state?: UnitState | UnitState[]; timeout?: number } = {},
  ): Promise<UnitState[]> {
    const states =
      opts.state === undefined ? UNIT_FINAL : Array.isArray(opts.state) ? opts.state : [opts.state];
    const recs = await this.watcher.wait(
      opts.uids,
      states,
      opts.timeout === undefined ? undefined : opts.timeout * 1000,
      `waitUnits(${this.uid})`,
    );
    return recs.map((r) => r.state);
  }

  /** Cancels units (all of this manager by default). Final units are left alone. */
  async cancelUnits(uids?: string[]): Promise<void> {
    const list = uids ?? (await this.listUnits());
    for (let i = 0; i < list.length; i += SUBMIT_CHUNK) {
      await this.session.transport.request('POST', this.session.path('/units/cancel'), {
        umgr: this.uid,
        uids: list.slice(i, i + SUBMIT_CHUNK),
      });
    }
  }

  /** Calls `cb(unit, state)` once for every state every unit of this manager enters, in order. */
  registerCallback(cb: (unit: ComputeUnit, state: UnitState) => void): () => void {
    const off = this.watcher.register((r, s) => cb(this.handle(r.uid), s as UnitState));
    this.unsubscribe.push(off);
    return off;
  }

  /** Stops following the feed (callbacks end). */
  close(): void {
    for (const off of this.unsubscribe.splice(0)) off();
    this.session.unitManagers.delete(this.uid);
  }
}
