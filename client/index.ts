/**
 * Sortie's SDK: RADICAL-Pilot 0.22's pilot-job API in TypeScript idiom (camelCase, async).
 *
 * ```ts
 * import { Session, PilotManager, UnitManager } from 'sortie';
 * const session = await Session.create();
 * const pmgr = await PilotManager.create(session);
 * const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
 * const umgr = await UnitManager.create(session, 'direct_submission');
 * await umgr.addPilots(pilot);
 * await umgr.submitUnits([{ executable: '/bin/date' }]);
 * await umgr.waitUnits();
 * await session.close();
 * ```
 */
export type {
  ComputePilotDescription,
  ComputePilotDescriptionInput,
  ComputeUnitDescription,
  ComputeUnitDescriptionInput,
} from '../core/descriptions.ts';
export {
  AuthenticationFailed,
  AuthorizationFailed,
  BadParameter,
  DatabaseError,
  DoesNotExist,
  IncorrectState,
  IncorrectURL,
  NoSuccess,
  NotImplemented,
  PermissionDenied,
  PilotException,
  Throttled,
  Timeout,
} from '../core/errors.ts';
export { StagingAction, type StagingDirective, StagingFlag } from '../core/staging.ts';
export { PilotState, UnitState } from '../core/states.ts';
export type { PilotRecord, StateEntry, UnitRecord } from '../core/wire.ts';
export * from './constants.ts';
export { Context } from './context.ts';
export type { HistoryEntry, LogEntry } from './history.ts';
export { ComputePilot, PILOT_FINAL } from './pilot.ts';
export { type PilotCallback, PilotManager, type WaitPilotsOptions } from './pilot-manager.ts';
export { Session, type SessionOptions } from './session.ts';
export { ComputeUnit, UNIT_FINAL } from './unit.ts';
export {
  type QueueSizeCallback,
  SCHED_BACKFILLING,
  SCHED_DIRECT_SUBMISSION,
  SCHED_ROUND_ROBIN,
  SCHEDULERS,
  type SchedulerName,
  type UnitCallback,
  UnitManager,
  type WaitUnitsOptions,
} from './unit-manager.ts';
