/** RP's `UnitManager`: binds units to pilots through a scheduler, follows and cancels them. */

import { type ComputeUnitDescriptionInput, parseUnitDescriptions } from '../core/descriptions.ts';
import { BadParameter, DoesNotExist, IncorrectState } from '../core/errors.ts';
import { UnitState, unitModel } from '../core/states.ts';
import type { BriefRecord, PilotRecord, UnitRecord } from '../core/wire.ts';
import { METRICS, type Metric, UNIT_STATE, type WAIT_QUEUE_SIZE } from './constants.ts';
import { newRequestToken } from './http.ts';
import type { ComputePilot } from './pilot.ts';
import { PilotManager } from './pilot-manager.ts';
import type { Session } from './session.ts';
import { downloadOutputs, limiter, outputTransfers, type TransferRoute, uploadInputs } from './transfer.ts';
import { ComputeUnit, UNIT_FINAL } from './unit.ts';
import { type Entered, holdQuery, Watcher } from './watcher.ts';

/** Scheduler names (RP's SCHED_* constants). */
export { SCHEDULERS, type SchedulerName } from '../core/schedulers.ts';

import { SCHEDULERS, type SchedulerName } from '../core/schedulers.ts';
export const SCHED_DIRECT_SUBMISSION = 'direct_submission';
export const SCHED_ROUND_ROBIN = 'round_robin';
export const SCHED_BACKFILLING = 'backfilling';

/** What each scheduler does, for `schedulerDetails` (RP: the scheduler's own description). */
const SCHEDULER_DETAILS: Readonly<Record<SchedulerName, string>> = {
  direct_submission: "direct_submission: early binding at submit time to the manager's one pilot",
  round_robin: "round_robin: early binding at submit time, cycling over the manager's live pilots",
  backfilling: 'backfilling: late binding, units wait UNSCHEDULED until an active pilot has free cores',
};

/** A unit state callback (RP: `cb(unit, state)`, `[v0.23+]` `cb(unit, state, callbackData)`). */
export type UnitCallback = (unit: ComputeUnit, state: UnitState, callbackData?: unknown) => void;
/** A WAIT_QUEUE_SIZE callback: `cb(umgr, size, callbackData)` (RP: `cb(obj, value)`). */
export type QueueSizeCallback = (umgr: UnitManager, size: number, callbackData?: unknown) => void;

/** Options of every unit wait: RP's `state` and `timeout` (seconds), and Sortie's stricter form. */
export interface WaitUnitsOptions {
  state?: UnitState | UnitState[];
  /** Seconds, as RP; when it is up the states are returned as they are (RP). */
  timeout?: number;
  /** Throw Timeout naming the laggards instead of returning the states. */
  throwOnTimeout?: boolean;
}

/** Units sent per submit request: keeps each request far below API Gateway's 10 MB body limit. */
const SUBMIT_CHUNK = 2_000;

/** A unit manager (RP's UnitManager). Create with `await UnitManager.create(session, scheduler)`. */
export class UnitManager {
  private readonly watcher: Watcher<UnitState, UnitRecord>;
  private readonly handles = new Map<string, ComputeUnit>();
  /** Units whose last delivered state is UNSCHEDULED: RP's wait queue. */
  private readonly waitQueue = new Set<string>();
  private queueSize = 0;
  /**
   * The manager's pilots as this process last heard them (addPilots, removePilots, listPilots answers):
   * sent with each submission, so that the API reads them beside the manager instead of after it. Only a
   * hint: the manager's own list decides, and a stale one costs that round trip back.
   */
  private knownPilots: string[] | undefined;
  private readonly queueCallbacks = new Set<(size: number) => void>();

  private constructor(
    readonly session: Session,
    readonly uid: string,
    readonly scheduler: SchedulerName,
  ) {
    this.watcher = new Watcher<UnitState, UnitRecord>(
      (since, hold, known) =>
        session.transport.paginate<UnitRecord | BriefRecord>(session.path(`/umgrs/${uid}/units`), {
          since,
          known,
          ...holdQuery(hold),
        }),
      UNIT_FINAL,
      (state) => unitModel.order[state],
    );
    this.watcher.onEntered((entered) => {
      this.countQueue(entered);
      // RP's UMGR output stager: a DONE unit's TRANSFER outputs come to this machine at once.
      for (const e of entered)
        if (e.state === UnitState.DONE && outputTransfers(e.record).length)
          this.fetchOutputs(e.record).catch(() => {}); // reported by the wait that awaits it
    });
    session.unitManagers.set(uid, this);
  }

  /** Calls the session's transfer route (presigned URLs for TRANSFER directives). */
  private readonly transferRoute: TransferRoute = (body) =>
    this.session.transport.request('POST', this.session.path('/transfers'), body);

  /** Downloads of DONE units' TRANSFER outputs, one per unit, started when DONE is seen. */
  private readonly fetched = new Map<string, Promise<string[]>>();
  private readonly fetchSlots = limiter();

  private fetchOutputs(rec: UnitRecord): Promise<string[]> {
    let p = this.fetched.get(rec.uid);
    if (!p) {
      p = this.fetchSlots(() => downloadOutputs(this.transferRoute, rec));
      this.fetched.set(rec.uid, p);
    }
    return p;
  }

  /**
   * @internal Downloads a unit's TRANSFER outputs again (`unit.stageOut()`): for a user who wants them
   * later, elsewhere (another working directory) or again. Returns the paths written.
   */
  async stageOutUnit(uid: string): Promise<string[]> {
    await this.watcher.poll();
    const rec = this.watcher.records.get(uid);
    if (!rec)
      throw new DoesNotExist(`stageOut: unknown unit ${JSON.stringify(uid)} in ${this.uid}`, { obj: uid });
    if (rec.state !== UnitState.DONE)
      throw new IncorrectState(`stageOut: unit ${uid} is ${rec.state}; outputs are fetched from DONE units`, {
        obj: uid,
      });
    const p = downloadOutputs(this.transferRoute, rec);
    this.fetched.set(uid, p);
    return p;
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

  /** RP's `scheduler_details`: what this manager's scheduler does. */
  get schedulerDetails(): string {
    return SCHEDULER_DETAILS[this.scheduler];
  }

  /** Adds pilots (handles or uids) to this manager's scheduler. */
  async addPilots(pilots: ComputePilot | string | (ComputePilot | string)[]): Promise<void> {
    const list = (Array.isArray(pilots) ? pilots : [pilots]).map((p) => (typeof p === 'string' ? p : p.uid));
    const r = await this.session.transport.request<{ pilots?: string[] }>(
      'POST',
      this.session.path(`/umgrs/${this.uid}/pilots`),
      { pilots: list },
    );
    this.knownPilots = r.pilots;
  }

  /**
   * RP's `remove_pilots(pilot_ids, drain=True)`: the pilots take no new units of this manager (they keep
   * running; other managers' units are untouched). With `drain` (RP's default) this manager's units
   * already bound to them run on to their end; without, those not final are cancelled, as RP cancels
   * the removed pilot's active units. A pilot not added to this manager is a BadParameter naming it.
   */
  async removePilots(
    pilots: ComputePilot | string | (ComputePilot | string)[],
    opts: { drain?: boolean } = {},
  ): Promise<void> {
    const list = (Array.isArray(pilots) ? pilots : [pilots]).map((p) => (typeof p === 'string' ? p : p.uid));
    const r = await this.session.transport.request<{ pilots?: string[] }>(
      'POST',
      this.session.path(`/umgrs/${this.uid}/pilots/remove`),
      { pilots: list, drain: opts.drain ?? true },
    );
    this.knownPilots = r.pilots;
    if (opts.drain === false) this.watcher.expectChange();
  }

  /** Uids of the pilots added to this manager. */
  async listPilots(): Promise<string[]> {
    const r = await this.session.transport.request<{ pilots: string[] }>(
      'GET',
      this.session.path(`/umgrs/${this.uid}`),
    );
    this.knownPilots = r.pilots;
    return r.pilots;
  }

  /** Handles of the pilots added to this manager, from their pilot managers (attached if this process has none). */
  async getPilots(): Promise<ComputePilot[]> {
    const out: ComputePilot[] = [];
    for (const uid of await this.listPilots()) {
      let pmgr = [...this.session.pilotManagers.values()].find((m) => m.record(uid) !== undefined);
      if (!pmgr) {
        const rec = await this.session.transport.request<PilotRecord>(
          'GET',
          this.session.path(`/pilots/${encodeURIComponent(uid)}`),
        );
        pmgr = this.session.pilotManagers.get(rec.pmgr) ?? PilotManager.attach(this.session, rec.pmgr);
      }
      out.push(await pmgr.getPilots(uid));
    }
    return out;
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
    // TRANSFER inputs go to S3 first; each directive then names its object.
    await uploadInputs(this.transferRoute, descriptions);
    const units: ComputeUnit[] = [];
    for (let i = 0; i < descriptions.length; i += SUBMIT_CHUNK) {
      const r = await this.session.transport.request<{ items: UnitRecord[] }>(
        'POST',
        this.session.path(`/umgrs/${this.uid}/units`),
        {
          descriptions: descriptions.slice(i, i + SUBMIT_CHUNK),
          ...(this.knownPilots?.length ? { pilots: this.knownPilots } : {}),
        },
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

  /** Unit handles: all, the given uids, or one handle for one uid (RP: single in, single out). */
  getUnits(uid: string): Promise<ComputeUnit>;
  getUnits(uids?: string[]): Promise<ComputeUnit[]>;
  async getUnits(uids?: string | string[]): Promise<ComputeUnit | ComputeUnit[]> {
    await this.watcher.poll();
    const all =
      uids === undefined ? [...this.watcher.records.keys()] : typeof uids === 'string' ? [uids] : uids;
    for (const u of all)
      if (!this.watcher.records.has(u))
        throw new DoesNotExist(`getUnits: unknown unit ${JSON.stringify(u)} in ${this.uid}`, { obj: u });
    const units = all.map((u) => this.handle(u));
    return typeof uids === 'string' ? (units[0] as ComputeUnit) : units;
  }

  /** @internal Reads the feed now: every handle of this manager is current afterwards. */
  async refresh(): Promise<void> {
    await this.watcher.poll();
  }

  /**
   * Waits until the units (all by default) reach one of `state` (default: DONE, FAILED, CANCELED), a
   * later one, or a final state they can never leave. `timeout` in seconds (RP); when it is up the states
   * are returned as they are, as RP does, unless `throwOnTimeout` (then Timeout names the laggards).
   * One uid in, one state out; a list or none in, a list out. Unknown uid: DoesNotExist.
   */
  waitUnits(opts: WaitUnitsOptions & { uids: string }): Promise<UnitState>;
  waitUnits(opts?: WaitUnitsOptions & { uids?: string[] }): Promise<UnitState[]>;
  async waitUnits(
    opts: WaitUnitsOptions & { uids?: string | string[] } = {},
  ): Promise<UnitState | UnitState[]> {
    const states =
      opts.state === undefined ? UNIT_FINAL : Array.isArray(opts.state) ? opts.state : [opts.state];
    const recs = await this.watcher.wait(
      typeof opts.uids === 'string' ? [opts.uids] : opts.uids,
      states,
      {
        timeoutMs: opts.timeout === undefined ? undefined : opts.timeout * 1000,
        ...(opts.throwOnTimeout ? { throwOnTimeout: true } : {}),
      },
      `waitUnits(${this.uid})`,
    );
    // A DONE unit's TRANSFER outputs are on this machine when the wait returns (or the wait says why not).
    await Promise.all(
      recs
        .filter((r) => r.state === UnitState.DONE && outputTransfers(r).length)
        .map((r) => this.fetchOutputs(r)),
    );
    const out = recs.map((r) => r.state);
    return typeof opts.uids === 'string' ? (out[0] as UnitState) : out;
  }

  /** Cancels units: all of this manager by default, one uid or a list. Final units are left alone. */
  async cancelUnits(uids?: string | string[]): Promise<void> {
    const list = typeof uids === 'string' ? [uids] : (uids ?? (await this.listUnits()));
    for (let i = 0; i < list.length; i += SUBMIT_CHUNK) {
      await this.session.transport.request('POST', this.session.path('/units/cancel'), {
        umgr: this.uid,
        uids: list.slice(i, i + SUBMIT_CHUNK),
      });
    }
    // The cancels land within about a second: follow the feed closely again to see them then.
    this.watcher.expectChange();
  }

  /**
   * RP's `register_callback(cb, metric=UNIT_STATE, callback_data)`. UNIT_STATE: `cb(unit, state, data)`
   * once for every state every unit of this manager enters, in order. WAIT_QUEUE_SIZE: `cb(umgr, size,
   * data)` whenever the number of this manager's UNSCHEDULED units changes. Returns what unregisters it.
   */
  registerCallback(cb: UnitCallback, metric?: typeof UNIT_STATE, callbackData?: unknown): () => void;
  registerCallback(cb: QueueSizeCallback, metric: typeof WAIT_QUEUE_SIZE, callbackData?: unknown): () => void;
  registerCallback(
    cb: UnitCallback | QueueSizeCallback,
    metric: Metric = UNIT_STATE,
    callbackData?: unknown,
  ): () => void {
    if (!(METRICS as readonly string[]).includes(metric))
      throw new BadParameter(
        `registerCallback.metric: must be one of ${METRICS.join(', ')}, got ${JSON.stringify(metric)}`,
      );
    if (metric === UNIT_STATE) {
      const unitCb = cb as UnitCallback;
      return this.watcher.register((r, s) => unitCb(this.handle(r.uid), s as UnitState, callbackData));
    }
    const queueCb = cb as QueueSizeCallback;
    const fire = (size: number) => queueCb(this, size, callbackData);
    this.queueCallbacks.add(fire);
    // The queue only moves when the feed does: listen to it (a no-op callback keeps the poller going).
    const off = this.watcher.register(() => {});
    return () => {
      this.queueCallbacks.delete(fire);
      off();
    };
  }

  /**
   * Follows the wait queue through the states entered, in the order they were entered across units (a
   * pilot's end moves many units to UNSCHEDULED and on again within one poll), and reports every change.
   */
  private countQueue(entered: Entered<UnitRecord>[]): void {
    const ordered = entered
      .map((e, i) => ({ e, i, t: Date.parse(e.time) }))
      .sort((a, b) => a.t - b.t || a.i - b.i);
    for (const { e } of ordered) {
      if (e.state === UnitState.UNSCHEDULED) this.waitQueue.add(e.record.uid);
      else this.waitQueue.delete(e.record.uid);
      if (this.waitQueue.size === this.queueSize) continue;
      this.queueSize = this.waitQueue.size;
      for (const fire of this.queueCallbacks) {
        try {
          fire(this.queueSize);
        } catch (err) {
          console.error('sortie: WAIT_QUEUE_SIZE callback threw:', err);
        }
      }
    }
  }

  /** RP's `as_dict()`: what identifies this manager. */
  asDict(): { uid: string; session: string; scheduler: SchedulerName } {
    return { uid: this.uid, session: this.session.uid, scheduler: this.scheduler };
  }

  /**
   * Closes the manager (RP `close()`): stops following the feed, so no callback fires again and no timer
   * is left; pending waits fail with IncorrectState. Units keep running (RP: closing a unit manager does
   * not cancel its units). Safe to call twice.
   */
  async close(): Promise<void> {
    this.watcher.close();
    this.queueCallbacks.clear();
    // Downloads under way finish first: the session's close deletes their objects next.
    await Promise.allSettled(this.fetched.values());
    this.session.unitManagers.delete(this.uid);
  }
}
