/**
 * The pilot machine's job checks, as pure rules: how long the next wait lasts (the back-off), what a check
 * decides from the batch system's answer and the pilot's clocks, and what the longest allowed life of a
 * pilot costs in Step Functions history events (a Standard execution ends at 25,000).
 *
 * A pilot goes through three phases, each with its own clock:
 * - `queued`: the batch job waits in the queue. The clock starts at submission; the limit is the pilot's
 *   `queueTimeout`, else the resource's `maxQueueTimeout` (default 7 days): as long as the batch system
 *   keeps the job, within that cap.
 * - `starting`: the batch system reports the job running, the agent has not called in. The clock starts
 *   at the first check that saw it running; the limit is `activateTimeout` (the pilot's, else the
 *   resource's, else the deployment's).
 * - `active`: the agent called in. The batch job is still checked, so a job that ended (scancel, node
 *   failure, an agent killed with its job) fails the pilot at the next check; the agent's heartbeats are
 *   checked too (each turn of the Active wait restarts Step Functions' own heartbeat clock); the limit is
 *   the walltime plus the grace the deployment gives (`activeTimeoutSeconds`).
 */

/** How often a phase's batch job is checked. */
export interface JobCheckPolicy {
  /** First interval, seconds (the deployment's `jobCheckSeconds`, or the resource's). */
  firstSeconds: number;
  /** Cap of the back-off, seconds (the resource's `maxJobCheckSeconds`, default 600). */
  maxSeconds: number;
}

/** Default cap of the back-off: 10 minutes. */
export const DEFAULT_MAX_JOB_CHECK_SECONDS = 600;
/** Default longest queue wait of a resource: 7 days. */
export const DEFAULT_MAX_QUEUE_SECONDS = 7 * 24 * 3600;
/**
 * Past `maxSeconds × HISTORY_SPREAD` of waiting (17 h with the defaults), an interval is this fraction
 * of the time waited so far: the number of checks then grows with the logarithm of the wait, so no wait
 * or walltime, however long, can fill the execution's history. Below it the cap holds.
 */
export const HISTORY_SPREAD = 100;
/**
 * History events of one turn of a wait: the waiting Task that times out (TaskStateEntered, TaskScheduled,
 * TaskStarted, TaskSubmitted, TaskTimedOut, and TaskStateExited as the embedded interpreter records a
 * caught error) and the check Task (TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded,
 * TaskStateExited). test/local-stepfunctions.test.ts holds the embedded interpreter's count against it.
 */
export const EVENTS_PER_TURN = 11;
/** Events outside the turns: start, Launch, the two Pass states, the last wait, Finalize, the end. */
export const EVENTS_FIXED = 40;
/** Step Functions' hard limit on a Standard execution's history. */
export const HISTORY_LIMIT = 25_000;

/**
 * Seconds until the next check after `elapsed` seconds in a phase: a quarter of the time waited, at least
 * `firstSeconds` and at most `maxSeconds` (30 s → 10 min in ~17 checks), and past HISTORY_SPREAD × the
 * cap a fixed fraction of the time waited. Whole seconds (TimeoutSeconds must be a positive integer).
 */
export function checkInterval(elapsed: number, policy: JobCheckPolicy): number {
  const first = Math.max(1, policy.firstSeconds);
  const cap = Math.max(first, policy.maxSeconds);
  const backoff = Math.min(cap, Math.max(first, elapsed / 4));
  return Math.max(1, Math.ceil(Math.max(backoff, elapsed / HISTORY_SPREAD)));
}

/** Number of checks (turns) a phase of `seconds` takes under `policy`. */
export function turnsFor(seconds: number, policy: JobCheckPolicy): number {
  let t = 0;
  let n = 0;
  while (t < seconds) {
    t += checkInterval(t, policy);
    n++;
  }
  return n;
}

/** History events of an execution whose phases last `phases` seconds each (the longest allowed life). */
export function historyEvents(phases: readonly number[], policy: JobCheckPolicy): number {
  return EVENTS_FIXED + EVENTS_PER_TURN * phases.reduce((n, s) => n + turnsFor(s, policy), 0);
}

/** The batch system's view of the job as the check sees it. */
export interface JobView {
  state: 'queued' | 'running' | 'finished' | 'unknown';
  /** The batch system's words, for the pilot log. */
  detail?: string;
}

/** Everything one check decides on; times in epoch milliseconds. */
export interface CheckInput {
  now: number;
  /** The pilot is ACTIVE (its agent called in). */
  active: boolean;
  jobId?: string;
  job: JobView;
  /** When the pilot's job was submitted (PENDING_ACTIVE), or the pilot submitted. */
  queuedSince: number;
  /** When an earlier check first saw the job running (carried in the execution's state). */
  runningSince?: number;
  /** When the pilot became ACTIVE, and the agent's last heartbeat. */
  activeSince?: number;
  lastHeartbeat?: number;
  /** Seconds. */
  queueTimeout: number;
  activateTimeout: number;
  heartbeat: number;
  /** Walltime plus grace, seconds from activeSince. */
  activeTimeout: number;
  policy: JobCheckPolicy;
}

/** What a check decided: wait this long for the next one, or fail the pilot with this error and reason. */
export type CheckDecision =
  | { wait: number; runningSince?: number; note?: string }
  | { fail: { error: string; reason: string } };

/** Error names of the checks (the pilot's end decision shows their messages as the reason). */
export const JOB_ENDED_ERROR = 'Sortie.JobEnded';
export const QUEUE_TIMEOUT_ERROR = 'Sortie.QueueTimeout';
export const ACTIVATION_TIMEOUT_ERROR = 'Sortie.ActivationTimeout';
export const AGENT_LOST_ERROR = 'Sortie.AgentLost';
export const OVERRAN_ERROR = 'Sortie.AgentOverran';

/** The reason a lost agent gives (shared with a heartbeat timeout inside one turn). */
export function agentLostReason(heartbeatSeconds: number): string {
  return `agent lost: no heartbeat for ${heartbeatSeconds} s (agent killed, node lost or network cut)`;
}

/** `PENDING (Resources)`-style words, or the bare state. */
function view(job: JobView): string {
  return `${job.state}${job.detail ? ` (${job.detail})` : ''}`;
}

/** The wait until the next check: the back-off, but never past the phase's deadline (plus a second). */
function until(elapsed: number, limit: number, policy: JobCheckPolicy): number {
  return Math.max(1, Math.min(checkInterval(elapsed, policy), Math.ceil(limit - elapsed) + 1));
}

/** One job check: the rules of the three phases (see the module comment). */
export function decideCheck(c: CheckInput): CheckDecision {
  const job = `batch job ${c.jobId ?? '?'}`;
  if (c.active) {
    const since = c.activeSince ?? c.now;
    if (c.job.state === 'finished')
      return {
        fail: { error: JOB_ENDED_ERROR, reason: `${job} ended while the pilot was active: ${view(c.job)}` },
      };
    const heard = Math.max(since, c.lastHeartbeat ?? since);
    if ((c.now - heard) / 1000 > c.heartbeat)
      return { fail: { error: AGENT_LOST_ERROR, reason: agentLostReason(c.heartbeat) } };
    const elapsed = (c.now - since) / 1000;
    if (elapsed > c.activeTimeout)
      return {
        fail: {
          error: OVERRAN_ERROR,
          reason: `agent did not end at its walltime (${c.activeTimeout} s with grace); ${job}: ${view(c.job)}`,
        },
      };
    return { wait: until(elapsed, c.activeTimeout, c.policy) };
  }
  if (c.job.state === 'finished')
    return {
      fail: {
        error: JOB_ENDED_ERROR,
        reason: `${job} ended before its agent became active: ${c.job.detail ?? 'no detail'}`,
      },
    };
  if (c.job.state === 'queued') {
    const waited = (c.now - c.queuedSince) / 1000;
    if (waited > c.queueTimeout)
      return {
        fail: {
          error: QUEUE_TIMEOUT_ERROR,
          reason: `${job} still queued after ${Math.round(waited)} s (queue limit ${c.queueTimeout} s): ${view(c.job)}`,
        },
      };
    return { wait: until(waited, c.queueTimeout, c.policy), note: `queued: ${view(c.job)}` };
  }
  // Running (or a batch system that cannot say): the activation deadline counts from the first check
  // that saw the job run, not from submission, so a long queue wait never eats into it.
  const runningSince = c.runningSince ?? c.now;
  const started = (c.now - runningSince) / 1000;
  if (started > c.activateTimeout)
    return {
      fail: {
        error: ACTIVATION_TIMEOUT_ERROR,
        reason: `agent did not become active within ${c.activateTimeout} s of its job starting; ${job}: ${view(c.job)}`,
      },
    };
  return { wait: until(started, c.activateTimeout, c.policy), runningSince };
}
