/**
 * Commands for the agent (cancel units, cancel the pilot), as every agent answer carries them: the pull,
 * the state reports, the heartbeat and `/agent/commands`. They stay on the pilot record until the agent has taken
 * them (the heartbeat then trims them); the agent says how many it has taken (`commandsSeen`) and gets
 * only the newer ones, so a cancel reaches it on whichever call answers first, and no answer repeats the
 * whole list.
 */
import type { PilotRecord } from '../../store/records.ts';

/** What an agent answer carries: the commands after the first `seen` ones, and the new count. */
export interface AgentCommands {
  cancelUnits: string[];
  cancelPilot: boolean;
  /** How many commands the pilot record holds: the agent sends it back as `commandsSeen`. */
  seen: number;
}

/**
 * The agent's `commandsSeen` from a request body: a count it took before, or 0 (all) when absent or not a
 * count. A count beyond the list (which is never cleared) also gives all: the agent ignores repeats.
 */
export function commandsSeen(body: Record<string, unknown>): number {
  const n = body.commandsSeen;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 ? n : 0;
}

/**
 * The pilot's commands the agent has not taken yet (all those on the record when `seen` does not fit: the
 * agent ignores repeats). `seen` counts from the very first command, trimmed ones included.
 */
export function commandsFor(
  pilot: Pick<PilotRecord, 'commands' | 'commandsBase'>,
  seen: number,
): AgentCommands {
  const all = pilot.commands ?? [];
  const base = pilot.commandsBase ?? 0;
  const fresh = seen >= base && seen <= base + all.length ? all.slice(seen - base) : all;
  return {
    cancelUnits: fresh.filter((c) => c.type === 'cancel_units').flatMap((c) => c.uids ?? []),
    cancelPilot: fresh.some((c) => c.type === 'cancel_pilot'),
    seen: base + all.length,
  };
}

/**
 * How many commands at the front of the record may be trimmed now: those the agent has taken, up to (not
 * including) a pilot cancel, which stays on the record for the backend's own checks (cancelRequested).
 */
export function trimmable(pilot: Pick<PilotRecord, 'commands' | 'commandsBase'>, seen: number): number {
  const all = pilot.commands ?? [];
  const taken = Math.min(all.length, seen - (pilot.commandsBase ?? 0));
  const firstPilotCancel = all.findIndex((c) => c.type === 'cancel_pilot');
  return Math.max(0, firstPilotCancel < 0 ? taken : Math.min(taken, firstPilotCancel));
}
