/**
 * The store: the only code that talks to DynamoDB. One table (stacks/manifest.ts); every request goes
 * through {@link Db}, which counts it. State changes are guarded single-item writes (store/guarded.ts);
 * no transactions or streams are used, so dynalite and DynamoDB Local both run it. The TTL attribute
 * (`expires`) only lets DynamoDB drop items that are dead anyway (request claims, past quota minutes);
 * the code never relies on it, since dynalite does not expire anything.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { PurgeBudget, PurgeStep } from '../core/purge.ts';
import type { PilotState, UnitState } from '../core/states.ts';
import type { UsageCounters } from '../core/usage.ts';
import type { StoreContext } from './context.ts';
import * as credentials from './credentials.ts';
import { Db, type Operation } from './db.ts';
import * as endpoints from './endpoints.ts';
import type { PatchOutcome, TransitionOutcome } from './guarded.ts';
import { entityPk, type UidKind } from './keys.ts';
import * as managers from './managers.ts';
import type { StoreObserver } from './observer.ts';
import * as pilots from './pilots.ts';
import * as pulls from './pulls.ts';
import * as purge from './purge.ts';
import type { Page, PageOptions } from './query.ts';
import * as quotas from './quotas.ts';
import { RecordCache } from './record-cache.ts';
import type {
  PilotManagerRecord,
  PilotRecord,
  SessionRecord,
  UnitManagerRecord,
  UnitRecord,
} from './records.ts';
import * as requests from './requests.ts';
import * as resources from './resources.ts';
import * as sessions from './sessions.ts';
import * as units from './units.ts';

export type { ContextInfo, GeneratedKey } from './credentials.ts';
export type { Operation } from './db.ts';
export type { EndpointRecord, EndpointRequestRecord } from './endpoints.ts';
export type { Expect, PatchOutcome, Refusal, TransitionOutcome } from './guarded.ts';
export { feedOf, type UidKind } from './keys.ts';
export type { ObservedKind, StoreObserver } from './observer.ts';
export type { NewPilot, PilotGuard, PilotPatch } from './pilots.ts';
export type { PurgeProgress, PurgeSubjects } from './purge.ts';
export { type Page, type PageOptions, rewindCursor } from './query.ts';
export type * from './records.ts';
export { CLAIM_TTL_SECONDS, canTakeOver, PENDING_TAKEOVER_SECONDS, type RequestClaim } from './requests.ts';
export type { SessionResourceConfig } from './resources.ts';
export { createTable } from './schema.ts';
export type { NewSession } from './sessions.ts';
export type { NewUnit, UnitArm, UnitExpect, UnitPatch, UnitReschedule, UnitTransition } from './units.ts';

/** How to reach the table. */
export interface StoreOptions {
  /** Physical table name (env SORTIE_TABLE in deployed code, read by the caller). */
  tableName: string;
  /** Defaults to `new DynamoDBClient({})`, which honours AWS_ENDPOINT_URL_DYNAMODB. */
  client?: DynamoDBClient;
  /** Clock (default: the system clock). */
  now?: () => Date;
  /** Parallel guarded writes in bulk transitions (default 32). */
  concurrency?: number;
  /** Told of every creation, state change and refusal (e.g. to publish metrics). */
  observer?: StoreObserver;
}

/** How old a record read through the store's {@link RecordCache} may be. */
export interface Freshness {
  /**
   * Milliseconds: a record this store read no longer ago, and has not written since, is answered without a
   * read. Absent or 0: always read. Only writes of other processes can make such an answer stale.
   */
  maxAgeMs?: number;
}

/** Sessions, managers, pilots and units on one DynamoDB table. Methods throw typed core/errors.ts errors. */
export class Store {
  readonly #ctx: StoreContext;
  /** Sessions and pilots read for token checks (store/record-cache.ts); dropped by this store's writes. */
  readonly #cache: RecordCache;

  constructor(options: StoreOptions) {
    const clock = options.now ?? (() => new Date());
    this.#cache = new RecordCache(1_000, () => clock().getTime());
    this.#ctx = {
      db: new Db(options.tableName, options.client, (keys) => this.#cache.written(keys)),
      now: () => clock().toISOString(),
      concurrency: options.concurrency ?? 32,
      ...(options.observer ? { observer: options.observer } : {}),
    };
  }

  /** `read()` of the item `key`, or its record cached no older than `fresh.maxAgeMs` (none asked: a plain read). */
  #read<T>(key: string, fresh: Freshness, read: () => Promise<T>): Promise<T> {
    return fresh.maxAgeMs ? this.#cache.get(key, fresh.maxAgeMs, read) : read();
  }

  /** DynamoDB requests sent so far, per operation, e.g. `{BatchWriteItem: 80, UpdateItem: 100}`. */
  get requests(): Readonly<Partial<Record<Operation, number>>> {
    return this.#ctx.db.requests;
  }

  /** Zero the request counters. */
  resetRequests(): void {
    this.#ctx.db.resetRequests();
  }

  /** See {@link quotas.takeQuota}. */
  takeQuota(sessionId: string, name: string, n: number, limit: number): Promise<void> {
    return quotas.takeQuota(this.#ctx, sessionId, name, n, limit);
  }

  // Endpoints -----------------------------------------------------------------------------------------

  /** See {@link endpoints.putEndpoint}. */
  putEndpoint(e: Parameters<typeof endpoints.putEndpoint>[1]) {
    return endpoints.putEndpoint(this.#ctx, e);
  }
  /** See {@link endpoints.getEndpoint}. */
  getEndpoint(sessionId: string, uid: string) {
    return endpoints.getEndpoint(this.#ctx, sessionId, uid);
  }
  /** See {@link endpoints.listEndpoints}. */
  listEndpoints(sessionId: string) {
    return endpoints.listEndpoints(this.#ctx, sessionId);
  }
  /** See {@link endpoints.patchEndpoint}. */
  patchEndpoint(sessionId: string, uid: string, patch: Parameters<typeof endpoints.patchEndpoint>[3]) {
    return endpoints.patchEndpoint(this.#ctx, sessionId, uid, patch);
  }
  /** See {@link endpoints.askEndpoint}. */
  askEndpoint(r: Parameters<typeof endpoints.askEndpoint>[1]) {
    return endpoints.askEndpoint(this.#ctx, r);
  }
  /** See {@link endpoints.getEndpointRequest}. */
  getEndpointRequest(
    sessionId: string,
    pilotId: string,
    op: Parameters<typeof endpoints.getEndpointRequest>[3],
  ) {
    return endpoints.getEndpointRequest(this.#ctx, sessionId, pilotId, op);
  }
  /** See {@link endpoints.pendingEndpointRequests}. */
  pendingEndpointRequests(sessionId: string, resource: string) {
    return endpoints.pendingEndpointRequests(this.#ctx, sessionId, resource);
  }
  /** See {@link endpoints.answerEndpointRequest}. */
  answerEndpointRequest(
    ...a: Parameters<typeof endpoints.answerEndpointRequest> extends [unknown, ...infer R] ? R : never
  ) {
    return endpoints.answerEndpointRequest(this.#ctx, ...a);
  }
  /** See {@link endpoints.withdrawEndpointRequest}. */
  withdrawEndpointRequest(
    sessionId: string,
    pilotId: string,
    op: Parameters<typeof endpoints.withdrawEndpointRequest>[3],
  ) {
    return endpoints.withdrawEndpointRequest(this.#ctx, sessionId, pilotId, op);
  }

  // Credentials ---------------------------------------------------------------------------------------

  /** See {@link requests.claimRequest}. */
  claimRequest(key: string, fingerprint: string, options?: { takeoverSeconds?: number }) {
    return requests.claimRequest(this.#ctx, key, fingerprint, options);
  }
  /** See {@link requests.getRequest}. */
  getRequest(key: string) {
    return requests.getRequest(this.#ctx, key);
  }
  /** See {@link requests.settleRequest}. */
  settleRequest(key: string, attempt: string, status: 'done' | 'failed', result: unknown): Promise<boolean> {
    return requests.settleRequest(this.#ctx, key, attempt, status, result);
  }
  /** See {@link requests.releaseRequest}. */
  releaseRequest(key: string, attempt: string): Promise<void> {
    return requests.releaseRequest(this.#ctx, key, attempt);
  }
  /** The time as the store sees it (its clock; tests may set it). */
  now(): string {
    return this.#ctx.now();
  }
  /** See {@link credentials.putContext}. */
  putContext(
    sessionId: string,
    resource: string,
    sealed: string,
    info?: Omit<credentials.ContextInfo, 'resource'>,
  ): Promise<void> {
    return credentials.putContext(this.#ctx, sessionId, resource, sealed, info);
  }

  /** See {@link credentials.listContexts}. */
  listContexts(sessionId: string): Promise<credentials.ContextInfo[]> {
    return credentials.listContexts(this.#ctx, sessionId);
  }

  /** See {@link credentials.getContext}. */
  getContext(sessionId: string, resource: string): Promise<string | undefined> {
    return credentials.getContext(this.#ctx, sessionId, resource);
  }

  /** See {@link credentials.putGeneratedKey}. */
  putGeneratedKey(key: Omit<credentials.GeneratedKey, 'created'>): Promise<credentials.GeneratedKey> {
    return credentials.putGeneratedKey(this.#ctx, key);
  }

  /** See {@link credentials.getGeneratedKey}. */
  getGeneratedKey(keyRef: string): Promise<credentials.GeneratedKey | undefined> {
    return credentials.getGeneratedKey(this.#ctx, keyRef);
  }

  /** See {@link credentials.getHostKey}. */
  getHostKey(hostPort: string): Promise<string | undefined> {
    return credentials.getHostKey(this.#ctx, hostPort);
  }

  /** See {@link pilots.trimCommands}. */
  trimCommands(
    sessionId: string,
    pilot: Pick<PilotRecord, 'uid' | 'commands' | 'commandsBase'>,
    count: number,
  ): Promise<boolean> {
    return pilots.trimCommands(this.#ctx, sessionId, pilot, count);
  }
  /** See {@link pulls.recordPull}. */
  recordPull(sessionId: string, pilotId: string, pull: pulls.PullRecord): Promise<void> {
    return pulls.recordPull(this.#ctx, sessionId, pilotId, pull);
  }
  /** See {@link pulls.lastPull}. */
  lastPull(sessionId: string, pilotId: string): Promise<pulls.PullRecord | undefined> {
    return pulls.lastPull(this.#ctx, sessionId, pilotId);
  }

  /** See {@link credentials.putHostKeyIfAbsent}. */
  putHostKeyIfAbsent(hostPort: string, keyLine: string): Promise<void> {
    return credentials.putHostKeyIfAbsent(this.#ctx, hostPort, keyLine);
  }

  // Resource configs --------------------------------------------------------------------------------

  /** See {@link resources.putResourceConfigs}. */
  putResourceConfigs(sessionId: string, configs: ReadonlyArray<readonly [string, unknown]>): Promise<void> {
    return resources.putResourceConfigs(this.#ctx, sessionId, configs);
  }

  /** See {@link resources.listResourceConfigs}. */
  listResourceConfigs(sessionId: string): Promise<resources.SessionResourceConfig[]> {
    return resources.listResourceConfigs(this.#ctx, sessionId);
  }

  // Sessions ------------------------------------------------------------------------------------------

  /** See {@link sessions.createSession}. */
  createSession(input: sessions.NewSession): Promise<SessionRecord> {
    return sessions.createSession(this.#ctx, input);
  }
  /** See {@link sessions.getSession}. */
  getSession(sessionId: string, fresh: Freshness = {}): Promise<SessionRecord> {
    return this.#read(sessionId, fresh, () => sessions.getSession(this.#ctx, sessionId));
  }
  /** See {@link sessions.markReconnect}. */
  markReconnect(sessionId: string): Promise<SessionRecord> {
    return sessions.markReconnect(this.#ctx, sessionId);
  }

  /** See {@link sessions.closeSession}. */
  closeSession(sessionId: string, options?: { purgeAt?: string }): Promise<SessionRecord> {
    return sessions.closeSession(this.#ctx, sessionId, options);
  }
  /** See {@link sessions.addSessionUsage}. */
  addSessionUsage(sessionId: string, usage: Partial<UsageCounters>): Promise<void> {
    return sessions.addSessionUsage(this.#ctx, sessionId, usage);
  }
  /** See {@link sessions.reserveIds}. */
  reserveIds(sessionId: string, kind: UidKind, n: number): Promise<string[]> {
    return sessions.reserveIds(this.#ctx, sessionId, kind, n);
  }
  /** See {@link sessions.returnIds}. */
  returnIds(sessionId: string, kind: UidKind, uids: readonly string[]): Promise<boolean> {
    return sessions.returnIds(this.#ctx, sessionId, kind, uids);
  }

  // Purge ---------------------------------------------------------------------------------------------

  /** See {@link purge.listSessionsToPurge}. */
  listSessionsToPurge(options?: Omit<PageOptions, 'since'>): Promise<Page<SessionRecord>> {
    return purge.listSessionsToPurge(this.#ctx, options);
  }
  /** See {@link purge.purgeSubjects}. */
  purgeSubjects(sessionId: string): Promise<purge.PurgeSubjects> {
    return purge.purgeSubjects(this.#ctx, sessionId);
  }
  /** See {@link purge.purgeRecords}. */
  purgeRecords(
    sessionId: string,
    steps: readonly PurgeStep[],
    budget: PurgeBudget,
    spent?: number,
  ): Promise<purge.PurgeProgress> {
    return purge.purgeRecords(this.#ctx, sessionId, steps, budget, spent);
  }

  // Managers ------------------------------------------------------------------------------------------

  /** See {@link managers.createPilotManager}. */
  createPilotManager(sessionId: string): Promise<PilotManagerRecord> {
    return managers.createPilotManager(this.#ctx, sessionId);
  }
  /** See {@link managers.getPilotManager}. */
  getPilotManager(sessionId: string, uid: string): Promise<PilotManagerRecord> {
    return managers.getPilotManager(this.#ctx, sessionId, uid);
  }
  /** See {@link managers.listPilotManagers}. */
  listPilotManagers(sessionId: string, options?: PageOptions): Promise<Page<PilotManagerRecord>> {
    return managers.listPilotManagers(this.#ctx, sessionId, options);
  }
  /** See {@link managers.createUnitManager}. */
  createUnitManager(sessionId: string, scheduler: string): Promise<UnitManagerRecord> {
    return managers.createUnitManager(this.#ctx, sessionId, scheduler);
  }
  /** See {@link managers.getUnitManager}. */
  getUnitManager(sessionId: string, uid: string): Promise<UnitManagerRecord> {
    return managers.getUnitManager(this.#ctx, sessionId, uid);
  }
  /** See {@link managers.listUnitManagers}. */
  listUnitManagers(sessionId: string, options?: PageOptions): Promise<Page<UnitManagerRecord>> {
    return managers.listUnitManagers(this.#ctx, sessionId, options);
  }
  /** See {@link managers.advanceRoundRobin}. */
  advanceRoundRobin(sessionId: string, uid: string, count: number): Promise<number> {
    return managers.advanceRoundRobin(this.#ctx, sessionId, uid, count);
  }
  /** See {@link managers.updateUnitManagerPilots}. */
  updateUnitManagerPilots(
    sessionId: string,
    uid: string,
    change: { add?: readonly string[]; remove?: readonly string[] },
  ): Promise<UnitManagerRecord> {
    return managers.updateUnitManagerPilots(this.#ctx, sessionId, uid, change);
  }

  // Pilots --------------------------------------------------------------------------------------------

  /** See {@link pilots.createPilots}. */
  createPilots(sessionId: string, pmgrId: string, input: readonly pilots.NewPilot[]): Promise<PilotRecord[]> {
    return pilots.createPilots(this.#ctx, sessionId, pmgrId, input);
  }
  /** See {@link pilots.listLivePilots}. */
  listLivePilots(options?: Omit<PageOptions, 'since'>): Promise<Page<PilotRecord>> {
    return pilots.listLivePilots(this.#ctx, options);
  }
  /** See {@link pilots.getPilot}. */
  getPilot(sessionId: string, pilotId: string, fresh: Freshness = {}): Promise<PilotRecord> {
    return this.#read(entityPk(sessionId, pilotId), fresh, () =>
      pilots.getPilot(this.#ctx, sessionId, pilotId),
    );
  }
  /** See {@link pilots.getPilots}. */
  getPilots(sessionId: string, pilotIds: readonly string[]): Promise<PilotRecord[]> {
    return pilots.getPilots(this.#ctx, sessionId, pilotIds);
  }
  /** See {@link pilots.getUnitManagerWithPilots}. */
  getUnitManagerWithPilots(sessionId: string, umgrId: string, pilotIds: readonly string[]) {
    return pilots.getUnitManagerWithPilots(this.#ctx, sessionId, umgrId, pilotIds);
  }
  /** See {@link pilots.listPilots}. */
  listPilots(sessionId: string, pmgrId: string, options?: PageOptions): Promise<Page<PilotRecord>> {
    return pilots.listPilots(this.#ctx, sessionId, pmgrId, options);
  }
  /** See {@link pilots.transitionPilot}. */
  transitionPilot(
    sessionId: string,
    pilotId: string,
    target: PilotState,
    patch?: pilots.PilotPatch,
    options?: { retry?: boolean },
  ): Promise<TransitionOutcome<PilotRecord, PilotState>> {
    return pilots.transitionPilot(this.#ctx, sessionId, pilotId, target, patch, options);
  }
  /** See {@link pilots.patchPilot}. */
  patchPilot(
    sessionId: string,
    pilotId: string,
    patch: pilots.PilotPatch,
    guard?: pilots.PilotGuard,
  ): Promise<PatchOutcome<PilotRecord>> {
    return pilots.patchPilot(this.#ctx, sessionId, pilotId, patch, guard);
  }
  /** Append lines to a pilot's log (any state). */
  appendPilotLog(
    sessionId: string,
    pilotId: string,
    lines: readonly string[],
  ): Promise<PatchOutcome<PilotRecord>> {
    return pilots.patchPilot(this.#ctx, sessionId, pilotId, { appendLog: lines });
  }

  // Units ---------------------------------------------------------------------------------------------

  /** See {@link units.createUnits}. */
  createUnits(
    sessionId: string,
    umgrId: string,
    input: readonly units.NewUnit[],
    managerRead = false,
    reserved?: Promise<readonly string[]>,
  ): Promise<UnitRecord[]> {
    return units.createUnits(this.#ctx, sessionId, umgrId, input, managerRead, reserved);
  }
  /** See {@link units.getUnits}. */
  getUnits(sessionId: string, uids: readonly string[]): Promise<UnitRecord[]> {
    return units.getUnits(this.#ctx, sessionId, uids);
  }
  /** See {@link units.findUnits}. */
  findUnits(sessionId: string, uids: readonly string[]): Promise<Map<string, UnitRecord>> {
    return units.findUnits(this.#ctx, sessionId, uids);
  }
  /** See {@link units.listUnits}. */
  listUnits(sessionId: string, umgrId: string, options?: PageOptions): Promise<Page<UnitRecord>> {
    return units.listUnits(this.#ctx, sessionId, umgrId, options);
  }
  /** See {@link units.listQueuedUnits}. */
  listQueuedUnits(
    sessionId: string,
    umgrId: string,
    options?: Omit<PageOptions, 'since'>,
  ): Promise<Page<UnitRecord>> {
    return units.listQueuedUnits(this.#ctx, sessionId, umgrId, options);
  }
  /** See {@link units.listPilotUnits}. */
  listPilotUnits(
    sessionId: string,
    pilotId: string,
    options?: Omit<PageOptions, 'since'>,
  ): Promise<Page<UnitRecord>> {
    return units.listPilotUnits(this.#ctx, sessionId, pilotId, options);
  }
  /** See {@link units.transitionUnits}. */
  transitionUnits(
    sessionId: string,
    updates: readonly units.UnitTransition[],
  ): Promise<TransitionOutcome<UnitRecord, UnitState>[]> {
    return units.transitionUnits(this.#ctx, sessionId, updates);
  }
  /** See {@link units.rescheduleUnits}. */
  rescheduleUnits(
    sessionId: string,
    input: readonly units.UnitReschedule[],
  ): Promise<TransitionOutcome<UnitRecord, UnitState>[]> {
    return units.rescheduleUnits(this.#ctx, sessionId, input);
  }
  /** See {@link units.returnLeases}. */
  returnLeases(
    sessionId: string,
    input: readonly units.UnitReschedule[],
  ): Promise<TransitionOutcome<UnitRecord, UnitState>[]> {
    return units.returnLeases(this.#ctx, sessionId, input);
  }
  /** See {@link units.armUnits}. */
  armUnits(sessionId: string, arms: readonly units.UnitArm[]): Promise<PatchOutcome<UnitRecord>[]> {
    return units.armUnits(this.#ctx, sessionId, arms);
  }
  /** See {@link units.clearLeaseDeadline}. */
  clearLeaseDeadline(sessionId: string, uid: string, pilotId: string): Promise<PatchOutcome<UnitRecord>> {
    return units.clearLeaseDeadline(this.#ctx, sessionId, uid, pilotId);
  }
  /** See {@link units.patchUnit}. */
  patchUnit(
    sessionId: string,
    uid: string,
    patch: units.UnitPatch,
    guard?: units.UnitExpect & { states?: readonly UnitState[] },
  ): Promise<PatchOutcome<UnitRecord>> {
    return units.patchUnit(this.#ctx, sessionId, uid, patch, guard);
  }
}
