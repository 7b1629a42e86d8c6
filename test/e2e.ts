/**
 * Helpers of the end-to-end tests (examples, faults, API): what a test needs to judge a run from the
 * outside — the callbacks it saw, the order of state histories, and the unit processes on this host.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import type { ComputeUnit, UnitState } from '../client/index.ts';
import { isFinal, unitModel } from '../core/states.ts';

/** Records every (unit, state) callback, in arrival order. */
export class CallbackLog {
  readonly seen: { uid: string; state: UnitState }[] = [];

  /** The callback to register: `umgr.registerCallback(log.record)`. */
  readonly record = (unit: ComputeUnit, state: UnitState): void => {
    this.seen.push({ uid: unit.uid, state });
  };

  /** States seen for one unit, in arrival order. */
  statesOf(uid: string): UnitState[] {
    return this.seen.filter((s) => s.uid === uid).map((s) => s.state);
  }
}

/**
 * Problems of a unit's state history that never rescheduled: each state once, ranks strictly
 * increasing, times non-decreasing, ending in a final state. Empty when the history is in order.
 */
export function historyProblems(unit: ComputeUnit): string[] {
  const h = unit.stateHistory;
  const problems: string[] = [];
  const states = h.map((e) => e.state);
  if (new Set(states).size !== states.length) problems.push(`duplicates in ${states.join(' > ')}`);
  for (let i = 1; i < h.length; i++) {
    const a = h[i - 1];
    const b = h[i];
    if (!a || !b) continue;
    if (unitModel.order[b.state] <= unitModel.order[a.state])
      problems.push(`${a.state} then ${b.state} goes backward`);
    if (Date.parse(b.time) < Date.parse(a.time)) problems.push(`${b.state} at ${b.time} before ${a.state}`);
  }
  const last = states.at(-1);
  if (last === undefined || !isFinal(unitModel, last))
    problems.push(`does not end final: ${states.join(' > ')}`);
  return problems.map((p) => `${unit.uid}: ${p}`);
}

/** Environment of a process as a map ('' values for unreadable ones: it exited or is not ours). */
function environOf(pid: number): Map<string, string> {
  try {
    const raw = readFileSync(`/proc/${pid}/environ`, 'utf8');
    return new Map(
      raw
        .split('\0')
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as [string, string]),
    );
  } catch {
    return new Map();
  }
}

/** PIDs of a pilot's agent (node running agent.cjs in its sandbox) on this host, or on a node sharing its process table. */
export function agentPids(sessionId: string, pilotId: string): number[] {
  return readdirSync('/proc').flatMap((name) => {
    const pid = Number(name);
    if (!Number.isInteger(pid)) return [];
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      return cwd.endsWith(`/${sessionId}/${pilotId}`) && cmd.includes('agent.cjs') ? [pid] : [];
    } catch {
      return [];
    }
  });
}

/**
 * PIDs of the live unit processes of a session on this host (optionally of one unit), found by the
 * RP_SESSION_ID / RP_UNIT_ID the agent gives every unit. Zombies count as gone.
 */
export function unitProcesses(sessionId: string, unitId?: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) continue;
    const env = environOf(pid);
    if (env.get('RP_SESSION_ID') !== sessionId) continue;
    if (unitId !== undefined && env.get('RP_UNIT_ID') !== unitId) continue;
    pids.push(pid);
  }
  return pids;
}

/** True while `pid` runs (a zombie has finished). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Kills, by PID, the unit processes a test's session left behind (e.g. orphans of a killed agent). */
export function killUnitProcesses(sessionId: string): number {
  const pids = unitProcesses(sessionId);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  return pids.length;
}

/** Polls `probe` every `everyMs` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * The agent's log once it has written its last line. The pilot's final state is written by the control
 * plane when a cancel lands, while the agent writes its summary only after it has stopped its units, so a
 * test that reads the log when `pilot.wait()` returns can miss that line (seen once in CI).
 */
export async function agentEnds(sandbox: string): Promise<string> {
  const file = path.join(sandbox, 'agent.out');
  return until(
    `${file} has the agent's last line`,
    () => {
      const out = existsSync(file) ? readFileSync(file, 'utf8') : '';
      return out.includes('agent ends:') ? out : undefined;
    },
    30_000,
  );
}
