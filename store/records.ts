/**
 * Records as the store returns them. They match core/wire.ts field for field, plus the fields only the
 * backend sees (secret hash, task tokens, commands). Items on the table carry the same fields plus the
 * key attributes (pk, kind, parent, pilotKey), which {@link stripKeys} removes.
 */
import type { ComputePilotDescription, ComputeUnitDescription } from '../core/descriptions.ts';
import type { PilotState, UnitState } from '../core/states.ts';

/** One entry of a state history: the state and when it was entered (ISO 8601). */
export interface StateEntry<S extends string = string> {
  state: S;
  time: string;
}

/** A session (RP's `<sid>` meta document). */
export interface SessionRecord {
  sessionId: string;
  state: 'open' | 'closed';
  /** SHA-256 of the session token's secret; the token itself is never stored. */
  tokenHash: string;
  created: string;
  closed?: string;
  changed: string;
}

/** A pilot manager. */
export interface PilotManagerRecord {
  sessionId: string;
  uid: string;
  created: string;
  changed: string;
}

/** A unit manager: its scheduler and the pilots added to it. */
export interface UnitManagerRecord {
  sessionId: string;
  uid: string;
  scheduler: string;
  pilots: string[];
  created: string;
  changed: string;
}

/** Where a pilot runs, as the agent reports it. */
export interface ResourceDetail {
  nodes: string[];
  coresPerNode: number;
  cores?: number;
  lrms?: string;
}

/** A command queued for a pilot's agent, handed over on its next heartbeat. */
export interface PilotCommand {
  type: 'cancel_pilot' | 'cancel_units';
  uids?: string[];
  time: string;
}

/** Step Functions task tokens a pilot's state machine waits on. */
export interface TaskTokens {
  /** Waits for the agent's first call (PENDING_ACTIVE → ACTIVE). */
  activate?: string;
  /** Waits for the pilot's end while ACTIVE. */
  active?: string;
}

/** A pilot (RP's pilot doc). */
export interface PilotRecord {
  sessionId: string;
  uid: string;
  pmgr: string;
  state: PilotState;
  stateHistory: StateEntry<PilotState>[];
  description: ComputePilotDescription;
  resource: string;
  sandbox?: string;
  jobId?: string;
  log: string[];
  resourceDetail?: ResourceDetail;
  submitted?: string;
  started?: string;
  finished?: string;
  secretHash?: string;
  taskTokens: TaskTokens;
  commands: PilotCommand[];
  changed: string;
}

/** A unit (RP's unit doc). */
export interface UnitRecord {
  sessionId: string;
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
  changed: string;
}

/** Attributes that exist only for keys and indexes. */
const KEY_ATTRS = ['pk', 'kind', 'parent', 'pilotKey', 'next_pmgr', 'next_umgr', 'next_pilot', 'next_unit'];

/** A raw table item. */
export type Item = Record<string, unknown>;

/** Item → record: drop the key attributes (the record type is the caller's promise about the rest). */
export function stripKeys<R>(item: Item): R {
  const out: Item = { ...item };
  for (const k of KEY_ATTRS) delete out[k];
  if (out.pilots instanceof Set) out.pilots = [...out.pilots].sort();
  return out as R;
}
