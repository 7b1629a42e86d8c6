/**
 * Records as the store returns them. They match core/wire.ts field for field, plus the fields only the
 * backend sees (secret hash, task tokens, commands). Items on the table carry the same fields plus the
 * key attributes (pk, kind, parent, pilotKey), which {@link stripKeys} removes.
 */

import type { PilotSize } from '../core/slots.ts';
import type { UsageCounters } from '../core/usage.ts';
import type {
  StateEntry,
  PilotRecord as WirePilotRecord,
  UnitRecord as WireUnitRecord,
} from '../core/wire.ts';
import type { Update } from './expr.ts';

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
  /** Closed with cleanup: when the reconciler may purge its records (ISO time; see core/purge.ts). */
  purgeAt?: string;
  changed: string;
  /** Counted control-plane usage (functions/lib/usage.ts); absent until a first count is flushed. */
  usage?: UsageCounters;
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
  /**
   * The agent's last heartbeat: the Active wait runs in turns (a job check between them), each with a
   * fresh Step Functions heartbeat clock, so the checks hold a silent agent against this instead.
   */
  lastHeartbeat?: string;
  /** The agent's own end, kept so that an Active turn starting after it still gets it (see await-agent). */
  agentEnd?: { state: string; reason: string };
  taskTokens: TaskTokens;
  /** Commands for the agent not yet trimmed (see {@link commandsBase}). */
  commands: PilotCommand[];
  /**
   * How many commands were trimmed off the front of {@link commands} once the agent had taken them: the
   * agent counts every command it took (`commandsSeen`), trimmed or not. Absent: none trimmed.
   */
  commandsBase?: number;
  /** The backfilling unit managers whose queues this pilot takes units from (added, not removed). */
  backfill?: string[];
  /**
   * The most a unit bound to this pilot may ask for, judged at submit (core/slots.ts `tooBigForPilot`):
   * fixed at the pilot's creation from its description and resource config; 'none' when the config
   * leaves it to the agent. Absent on pilots created before it was recorded: their submit reads the configs.
   */
  unitLimit?: PilotSize | 'none';
}

/** A unit (RP's unit doc): what the API shows, plus its session. */
export interface UnitRecord extends WireUnitRecord {
  sessionId: string;
  /** The lease holder of an unstarted claim (the pull's lease id); only its `POST /agent/started` may start it. */
  lease?: string;
  /** The lease's deadline (ms since the epoch): unstarted by then, the reconciler returns the unit to its queue. */
  leaseUntil?: number;
  /**
   * Armed to start: its agent may spawn it the moment a core frees, without a write-ahead, and reports
   * EXECUTING after the spawn. Until then everyone else treats it as possibly started: no cancel in the
   * table, no lease return, no reschedule; a sweep fails it (agent/arm-ahead.ts).
   */
  armed?: boolean;
}

/** Attributes that exist only for keys and indexes. */
const KEY_ATTRS = ['pk', 'kind', 'parent', 'pilotKey', 'next_pmgr', 'next_umgr', 'next_pilot', 'next_unit'];

/**
 * The table attribute holding a record's state history, compactly: one string per write,
 * `"State1,State2@<epoch ms>"` (every state a write passes is entered at the same instant).
 * Why not the wire's list of `{state, time}` maps: a unit passes ~12 states in 3 writes, and as maps
 * they were ~700 of its ~1,100 bytes, which pushed every unit write (and its index copy) over DynamoDB's
 * 1 KB write unit; as steps the history is ~200 bytes and a unit write costs half.
 */
export const HISTORY = 'history';

/**
 * Appends log lines and, in `logTimes` beside them, the time each was written (RP's log entries carry
 * their timestamp). A parallel list of times rather than a list of maps keeps the lines as they were;
 * items written before it existed have fewer times than lines (the times belong to the last lines).
 */
export function appendLog(u: Update, lines: readonly string[], now: string): void {
  u.append('log', lines);
  u.appendCreating(
    'logTimes',
    lines.map(() => now),
  );
}

/** One history step for {@link HISTORY}: the states a write enters, all at `time` (ISO 8601). */
export function historyStep(states: readonly string[], time: string): string {
  return `${states.join(',')}@${Date.parse(time)}`;
}

/** {@link HISTORY} steps → the wire's state history. Malformed steps are skipped, never thrown. */
export function decodeHistory(steps: unknown): StateEntry[] {
  if (!Array.isArray(steps)) return [];
  const out: StateEntry[] = [];
  for (const step of steps) {
    if (typeof step !== 'string') continue;
    const at = step.lastIndexOf('@');
    // Digits only: Number('') and Number(' ') are 0 (a made-up 1970), and a time past Date's range
    // would make toISOString throw.
    const ms = /^\d+$/.test(step.slice(at + 1)) ? new Date(Number(step.slice(at + 1))) : undefined;
    if (at <= 0 || !ms || Number.isNaN(ms.getTime())) continue;
    const time = ms.toISOString();
    for (const state of step.slice(0, at).split(',')) out.push({ state, time });
  }
  return out;
}

/** A raw table item. */
export type Item = Record<string, unknown>;

/**
 * Item → record: drop the key attributes and expand the compact {@link HISTORY} into `stateHistory`
 * (the record type is the caller's promise about the rest).
 */
export function stripKeys<R>(item: Item): R {
  const out: Item = { ...item };
  for (const k of KEY_ATTRS) delete out[k];
  if (out.pilots instanceof Set) out.pilots = [...out.pilots].sort();
  if (HISTORY in out) {
    out.stateHistory = decodeHistory(out[HISTORY]);
    delete out[HISTORY];
  }
  return out as R;
}
