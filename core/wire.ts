/**
 * Shapes of the records the HTTP API returns (types only). The SDK, the CLI and the handlers share them,
 * so a field renamed on one side is a compile error on the other.
 */
import type { ComputePilotDescription, ComputeUnitDescription } from './descriptions.ts';
import type { PilotState, UnitState } from './states.ts';

/**
 * Header of every agent request: which attempt of it this is (1 first, then its retries). A first attempt
 * cannot repeat a request the control plane already answered, so the pull route reads its record of the
 * last pull (the retry of a lost answer) only for a later attempt, or when the header is absent.
 */
export const ATTEMPT_HEADER = 'x-sortie-attempt';

/**
 * Receipts of queue messages an agent acks in one request (`acks`, any agent route): a pull answers at most
 * ten messages' receipts, so this is ten pulls' worth.
 */
export const MAX_ACKS_PER_REQUEST = 100;

/** One entry of a state history: the state and when it was entered (ISO 8601). */
export interface StateEntry<S extends string = string> {
  state: S;
  time: string;
}

/** Where a pilot runs, as its agent reports it (RP's `resource_detail`). */
export interface ResourceDetail {
  nodes: string[];
  /** The largest number of cores the pilot uses on one node. */
  coresPerNode: number;
  /** Cores the pilot uses in all. */
  cores?: number;
  /** GPUs the pilot uses in all. */
  gpus?: number;
  lrms?: string;
  /** Per node: the cores and GPUs the pilot uses there (node 0 is the agent's). */
  nodeDetails?: NodeDetail[];
  /** The launch methods chosen from the resource config: `task` for other nodes (FORK if none), `mpi`. */
  launchMethods?: { task: string; mpi?: string };
}

/** One node of a pilot. */
export interface NodeDetail {
  name: string;
  cores: number;
  gpus: number;
}

/** A pilot as the API returns it (RP's pilot doc). */
export interface PilotRecord {
  uid: string;
  pmgr: string;
  state: PilotState;
  stateHistory: StateEntry<PilotState>[];
  description: ComputePilotDescription;
  resource: string;
  sandbox?: string;
  jobId?: string;
  log: string[];
  /** When each log line was written, for the last lines (older records have none): see logEntries. */
  logTimes?: string[];
  resourceDetail?: ResourceDetail;
  submitted?: string;
  started?: string;
  finished?: string;
  /** Change cursor: `<ISO time>#<uid>` of the last write. */
  changed: string;
}

/** A unit as the API returns it (RP's unit doc). */
export interface UnitRecord {
  uid: string;
  umgr: string;
  name?: string;
  state: UnitState;
  stateHistory: StateEntry<UnitState>[];
  description: ComputeUnitDescription;
  pilot?: string;
  sandbox?: string;
  exitCode?: number;
  stdout?: string;
  stderr?: string;
  execLocations?: string[];
  submitted?: string;
  started?: string;
  finished?: string;
  log: string[];
  /** When each log line was written, for the last lines (older records have none). */
  logTimes?: string[];
  changed: string;
}

/** A page of a list or change feed: `cursor` goes back as `since` to get only what changed after. */
export interface Page<T> {
  items: T[];
  cursor: string;
  /** Present when more items match: pass it back as `next`. */
  next?: string;
}

/**
 * A record of a change feed the client said it has read (`known`: its cursor): its uid and change cursor
 * and how long its history is, where the whole record came before. The 2 s a poll looks back behind its cursor (writes stamped
 * just before a read may land after it) then costs a few bytes per record instead of the record. A client
 * that holds no record of that uid changed at or after `changed` reads the window again without `known`.
 */
export interface BriefRecord {
  uid: string;
  changed: string;
  /** Entries of its state history: with `changed`, what tells a client whether its copy is as new. */
  entries: number;
  brief: true;
}

/** One unit state report of an agent (`POST /agent/states`). */
export interface UnitReport {
  uid: string;
  state: 'Executing' | 'StagingOutput' | 'Done' | 'Failed' | 'Canceled';
  time: string;
  exitCode?: number;
  stdout?: string;
  stderr?: string;
  sandbox?: string;
  execLocations?: string[];
  reason?: string;
}

/**
 * One unit the agent is about to spawn (`POST /agent/started`, the write-ahead): recorded as EXECUTING
 * before its process exists, so that a sweep after the agent's death never reruns a unit that may have run.
 */
export interface StartReport {
  uid: string;
  /** The lease the unit was pulled under (the pull answer's `lease`): only its holder may start it. */
  lease: string;
  /**
   * The unit was handed over held, not claimed (the pull's `hold`): this start is its claim too, one
   * write from PENDING_EXECUTION to EXECUTING, on the agent's own pilot.
   */
  held?: true;
  time: string;
  sandbox?: string;
  execLocations?: string[];
}

/**
 * One unit the agent arms to start (or disarms), `arms`/`disarms` of `POST /agent/started`: see
 * agent/arm-ahead.ts. The lease is the pull's, as for a start.
 */
export interface ArmReport {
  uid: string;
  lease: string;
  /**
   * The unit was handed over held, not claimed (the pull's `hold`): this arm is its claim too, one write
   * from PENDING_EXECUTION to SCHEDULING, armed, leased to `lease`. Only in `arms`, never in `disarms`.
   */
  held?: true;
}

/** A response body as JSON, or as the text itself when it is not JSON (a gateway's plain-text error). */
export function parseBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
