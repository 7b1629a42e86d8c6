/**
 * The agent's inbox of control-plane commands (cancel units, cancel the pilot). Every answer of the pull,
 * the state reports, the heartbeat and `/agent/commands` may carry commands; the inbox keeps the count
 * already taken (sent back as `commandsSeen`, so answers carry only newer ones), takes each unit's cancel
 * once whichever answer brings it first, and remembers cancels of units that have not arrived yet: a pull
 * answer racing the cancel must not start them.
 */

/** Commands as an agent answer carries them (functions/callbacks/commands.ts). */
export interface Commands {
  cancelUnits: string[];
  cancelPilot: boolean;
  /** The pilot record's command count when answered; absent from older control planes. */
  seen?: number;
}

/** What the agent does with a command (see agent/main.ts). */
export interface CommandActions {
  /** Cancels a unit the agent holds (queued or running); false when it holds no such unit. */
  cancelUnit(uid: string): boolean;
  /** Ends the pilot (its units are killed on the way out). */
  cancelPilot(): void;
}

/** Uids remembered as taken; older ones are forgotten first (their repeats come only with a reset count). */
const MAX_REMEMBERED = 100_000;

/** Adds `uid` to an insertion-ordered set, dropping the oldest beyond `max`. */
function remember(set: Set<string>, uid: string, max: number): void {
  set.add(uid);
  if (set.size > max) set.delete(set.values().next().value as string);
}

/** The commands taken so far, and cancels waiting for their unit. */
export class CommandInbox {
  /** Commands taken: sent as `commandsSeen` on every call that can carry commands back. */
  seen = 0;
  private readonly taken = new Set<string>();
  /** Cancelled before the agent held them: dropped when a pull brings them. */
  private readonly early = new Set<string>();
  private actions: CommandActions | undefined;

  /** Sets what commands do; commands taken before (none in practice) are held in `early`. */
  bind(actions: CommandActions): void {
    this.actions = actions;
  }

  /** Takes the commands of one answer (absent or malformed parts are ignored). */
  take(c: Partial<Commands> | undefined): void {
    if (!c) return;
    if (typeof c.seen === 'number' && c.seen > this.seen) this.seen = c.seen;
    for (const uid of Array.isArray(c.cancelUnits) ? c.cancelUnits : []) {
      if (typeof uid !== 'string' || this.taken.has(uid)) continue;
      remember(this.taken, uid, MAX_REMEMBERED);
      if (!this.actions?.cancelUnit(uid)) remember(this.early, uid, MAX_REMEMBERED);
    }
    if (c.cancelPilot === true) this.actions?.cancelPilot();
  }

  /** True (once) when `uid` was cancelled before it arrived: the caller must not start it. */
  cancelledEarly(uid: string): boolean {
    return this.early.delete(uid);
  }
}
