/**
 * RP's module-level constants, so that `rp.EXECUTING` or `rp.WAIT_QUEUE_SIZE` ports as `EXECUTING` or
 * `WAIT_QUEUE_SIZE`. The values are the wire strings (RP's own values).
 */
import { StagingAction, StagingFlag } from '../core/staging.ts';
import { PilotState, UnitState } from '../core/states.ts';

// Pilot states (RP 0.22).
export const PENDING_LAUNCH = PilotState.PENDING_LAUNCH;
export const LAUNCHING = PilotState.LAUNCHING;
export const PENDING_ACTIVE = PilotState.PENDING_ACTIVE;
export const ACTIVE = PilotState.ACTIVE;
// Final states, shared by pilots and units as in RP.
export const DONE = UnitState.DONE;
export const FAILED = UnitState.FAILED;
export const CANCELED = UnitState.CANCELED;
// Unit states (RP 0.22, plus UNSCHEDULED from v0.23).
export const NEW = UnitState.NEW;
export const UNSCHEDULED = UnitState.UNSCHEDULED;
export const PENDING_INPUT_STAGING = UnitState.PENDING_INPUT_STAGING;
export const STAGING_INPUT = UnitState.STAGING_INPUT;
export const PENDING_EXECUTION = UnitState.PENDING_EXECUTION;
export const SCHEDULING = UnitState.SCHEDULING;
export const EXECUTING = UnitState.EXECUTING;
export const PENDING_OUTPUT_STAGING = UnitState.PENDING_OUTPUT_STAGING;
export const STAGING_OUTPUT = UnitState.STAGING_OUTPUT;

// Staging actions and flags (RP's `staging_directives.py`).
export const COPY = StagingAction.COPY;
export const LINK = StagingAction.LINK;
export const MOVE = StagingAction.MOVE;
export const TRANSFER = StagingAction.TRANSFER;
export const CREATE_PARENTS = StagingFlag.CREATE_PARENTS;
export const SKIP_FAILED = StagingFlag.SKIP_FAILED;

/** Unit manager callback metric: every state every unit enters (the default). */
export const UNIT_STATE = 'UNIT_STATE';
/** Unit manager callback metric: the number of the manager's UNSCHEDULED units, whenever it changes. */
export const WAIT_QUEUE_SIZE = 'WAIT_QUEUE_SIZE';
/** A unit manager callback metric. */
export type Metric = typeof UNIT_STATE | typeof WAIT_QUEUE_SIZE;
/** The metrics `UnitManager.registerCallback` accepts. */
export const METRICS: readonly Metric[] = [UNIT_STATE, WAIT_QUEUE_SIZE];
