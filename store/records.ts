/**
 * Records as the store returns them. They match core/wire.ts field for field, plus the fields only the
 * backend sees (secret hash, task tokens, commands). Items on the table carry the same fields plus the
 * key attributes (pk, kind, parent, pilotKey), which {@link stripKeys} removes.
 */
import type { PilotRecord as WirePilotRecord, UnitRecord as WireUnitRecord } from '../core/wire.ts';

/** A session (RP's `<sid>` meta document). */
export interface SessionRecord {
  sessionId: string;
  state: 'open' | 'closed';
  /** SHA-256 of the session token's secret; the token itself is never stored. */
  tokenHash: string;
  created: string;
  /** Last reconnect by uid (RP's `last_reconnect`). */
  lastReconnect?: string;
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

export type { ResourceDetail, StateEntry } from '../core/wire.ts';

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

/** A pilot (RP's pilot doc): what the API shows, plus what only the backend may see. */
export interface PilotRecord extends WirePilotRecord {
  sessionId: string;
  secretHash?: string;
  taskTokens: TaskTokens;
  commands: PilotCommand[];
}

/** A unit (RP's unit doc): what the API shows, plus its session. */
export interface UnitRecord extends WireUnitRecord {
  sessionId: string;
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
