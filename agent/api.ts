/**
 * The agent's only link to the control plane: HTTPS calls to the agent routes, authenticated by the
 * pilot token. Every call has a timeout; transient failures (network, 429, 502–504, a gateway's 500) are retried under the
 * one retry policy (core/retry.ts) inside the agent's budget, so a short API outage does not kill a pilot
 * but a dead control plane does.
 */

import { randomUUID } from 'node:crypto';
import { httpAttempt, isHttpAnswer, RETRY_POLICIES, type RetryPolicy, withRetry } from '../core/retry.ts';
import type { StagingDirective } from '../core/staging.ts';
import {
  type ArmReport,
  ATTEMPT_HEADER,
  MAX_ACKS_PER_REQUEST,
  type StartReport,
  type UnitReport,
} from '../core/wire.ts';
import { CommandInbox, type Commands } from './commands.ts';

/** A unit as the agent receives it from `POST /agent/pull`. */
export interface PulledUnit {
  uid: string;
  name?: string;
  /** The lease this pull holds on the unit's claim, sent back with its start (the write-ahead). */
  lease?: string;
  /** Armed by its claim (the pull's `arm`, agent/arm-ahead.ts): it may be spawned without a write-ahead. */
  armed?: boolean;
  /**
   * Handed over held, not claimed (the pull's `hold`, agent/arm-ahead.ts): the write that arms or starts
   * it claims it too, under `lease`. Cleared once an arm claimed it.
   */
  held?: boolean;
  description: {
    executable: string;
    arguments?: string[];
    environment?: Record<string, string>;
    cores?: number;
    gpus?: number;
    mpi?: boolean;
    preExec?: string[];
    postExec?: string[];
    stdout?: string;
    stderr?: string;
    /** RP's rule: a restartable unit may run again elsewhere, so its start needs no write-ahead. */
    restartable?: boolean;
    /** Run before the launch script (agent/staging.ts). */
    inputStaging?: StagingDirective[];
    /** Run after it. */
    outputStaging?: StagingDirective[];
    /** Remove the unit sandbox after output staging. */
    cleanup?: boolean;
  };
}

export type { ArmReport, StartReport, UnitReport } from '../core/wire.ts';

export type { Commands } from './commands.ts';

/** Error of a call that must not be retried (4xx other than 429): the pilot is gone or the token is bad. */
export class PermanentApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'PermanentApiError';
  }
}

/** The routes that carry the agent's acks of queue messages (every one the agent calls while it runs). */
const ACK_ROUTES: ReadonlySet<string> = new Set([
  '/agent/pull',
  '/agent/states',
  '/agent/started',
  '/agent/heartbeat',
  '/agent/commands',
  '/agent/done',
]);

/** Client of the agent routes. */
export class AgentApi {
  /** Request counts per route, for the bench. */
  readonly requests: Record<string, number> = {};
  /**
   * Commands carried back by pulls, reports, heartbeats and {@link commands}: each answer goes through
   * here, so a cancel reaches the agent on whichever call returns first.
   */
  readonly inbox = new CommandInbox();
  /**
   * Receipts of the queue messages whose units a pull answered (it leaves their delete to the agent's next
   * request, off the path from the claim to the spawn): sent with the next request of {@link ACK_ROUTES}.
   */
  private acks: string[] = [];
  private readonly policy: RetryPolicy;

  constructor(
    private readonly apiUrl: string,
    private readonly token: string,
    retryBudgetMs: number = RETRY_POLICIES.agent.budgetMs,
  ) {
    this.policy = { ...RETRY_POLICIES.agent, budgetMs: retryBudgetMs };
  }

  async call<T>(route: string, body: unknown, timeoutMs = 30_000): Promise<T> {
    const acks = ACK_ROUTES.has(route) ? this.acks.splice(0, MAX_ACKS_PER_REQUEST) : [];
    try {
      return await this.attempt<T>(route, acks.length ? { ...(body as object), acks } : body, timeoutMs);
    } catch (err) {
      // Not delivered: they go with the next request (a message never acked only comes back to a pull
      // after its visibility timeout, whose claim of its units is then refused and the message deleted).
      this.acks.unshift(...acks);
      throw err;
    }
  }

  private attempt<T>(route: string, body: unknown, timeoutMs: number): Promise<T> {
    return withRetry(
      async (attempt) => {
        this.requests[route] = (this.requests[route] ?? 0) + 1;
        // Every agent route is safe to repeat (activate and done are idempotent, states are guarded
        // transitions, a repeated start answers the units it already moved, a pull's claims stay bound
        // to this pilot), so every transient failure is retried.
        const answer = await httpAttempt(
          () =>
            fetch(`${this.apiUrl}${route}`, {
              method: 'POST',
              // The attempt tells the control plane whether this may repeat a request it already
              // answered: a pull reads its record of the last pull only then (functions/callbacks).
              headers: {
                authorization: `Bearer ${this.token}`,
                'content-type': 'application/json',
                [ATTEMPT_HEADER]: String(attempt),
              },
              body: JSON.stringify(body),
              signal: AbortSignal.timeout(timeoutMs),
            }),
          route,
        );
        if (answer.ok) return (answer.body ?? {}) as T;
        const message = `${route}: HTTP ${answer.status} ${answer.text}`;
        if (answer.status < 500) throw new PermanentApiError(message, answer.status);
        throw new Error(message);
      },
      {
        policy: this.policy,
        exhausted: (last, spent) =>
          new Error(
            `${route}: gave up after ${spent.attempts} attempts in ${spent.elapsedMs} ms: ${describeFailure(last)}`,
            { cause: last },
          ),
      },
    );
  }

  activate(resourceDetail: unknown): Promise<{ heartbeatIntervalSeconds: number }> {
    return this.call('/agent/activate', { resourceDetail });
  }

  /**
   * Long-polls the pilot's queue (server-side) and returns units already claimed for this pilot. `free`
   * is the room the agent offers per node for units of backfilling managers (late binding): the pull
   * claims only waiting units that fit it. `backlog` in the answer: such units still wait (pull again
   * when room frees up; the pull did not long-poll).
   */
  async pull(
    max: number,
    waitSeconds: number,
    free?: readonly { cores: number; gpus: number }[],
    /** How many of the units claimed to arm in the same write (the first that need a write-ahead). */
    arm = 0,
    /** Hand the other units that need a write-ahead over held, unclaimed (agent/arm-ahead.ts). */
    hold = false,
  ): Promise<{ units: PulledUnit[]; backlog: boolean }> {
    // One id per pull, the same on each of its retries: a retry whose first answer was lost gets the
    // units that answer held (they are claimed for this pilot already and would otherwise sit unstarted).
    const pullId = randomUUID();
    const answer = await this.call<{
      units: PulledUnit[];
      commands?: Commands;
      backlog?: boolean;
      receipts?: string[];
    }>(
      '/agent/pull',
      {
        max,
        waitSeconds,
        pullId,
        // This agent acks the pull's messages with its next request (see `acks`).
        ackLater: true,
        commandsSeen: this.inbox.seen,
        ...(free ? { free } : {}),
        ...(arm > 0 ? { arm } : {}),
        ...(hold ? { hold } : {}),
      },
      (waitSeconds + 25) * 1000,
    );
    this.inbox.take(answer.commands);
    if (Array.isArray(answer.receipts)) this.acks.push(...answer.receipts);
    return { units: answer.units ?? [], backlog: answer.backlog === true };
  }

  async states(updates: UnitReport[]): Promise<{ applied: number; refused: number }> {
    const answer = await this.call<{ applied: number; refused: number; commands?: Commands }>(
      '/agent/states',
      { updates, commandsSeen: this.inbox.seen },
    );
    this.inbox.take(answer.commands);
    return { applied: answer.applied, refused: answer.refused };
  }

  /**
   * Write-ahead of unit starts: the control plane moves each unit SCHEDULING → EXECUTING (only if still
   * bound to this pilot) and answers the uids it moved; only those may be spawned. `updates`: state
   * reports carried along (applied as `/agent/states` would), and the answer carries commands like every other.
   */
  async started(
    starts: StartReport[],
    updates?: UnitReport[],
    /** Units to arm or disarm (agent/arm-ahead.ts); answered in `armed` and `disarmed`. */
    marks: { arms?: ArmReport[]; disarms?: ArmReport[] } = {},
  ): Promise<{
    started: string[];
    armed?: string[];
    disarmed?: string[];
    applied?: number;
    refused?: number;
  }> {
    const answer = await this.call<{
      started: string[];
      armed?: string[];
      disarmed?: string[];
      applied?: number;
      refused?: number;
      commands?: Commands;
    }>('/agent/started', {
      ...(starts.length ? { starts } : {}),
      ...(updates?.length ? { updates } : {}),
      ...(marks.arms?.length ? { arms: marks.arms } : {}),
      ...(marks.disarms?.length ? { disarms: marks.disarms } : {}),
      commandsSeen: this.inbox.seen,
    });
    this.inbox.take(answer.commands);
    return answer;
  }

  async heartbeat(stats: unknown): Promise<void> {
    this.inbox.take(await this.call<Commands>('/agent/heartbeat', { stats, commandsSeen: this.inbox.seen }));
  }

  /** Asks for new commands only (no wait): for an agent not pulling, its buffer of claimed units full. */
  async commands(): Promise<void> {
    this.inbox.take(await this.call<Commands>('/agent/commands', { commandsSeen: this.inbox.seen }));
  }

  done(state: 'Done' | 'Failed', reason: string): Promise<unknown> {
    return this.call('/agent/done', { state, reason });
  }
}

function describeFailure(last: unknown): string {
  if (isHttpAnswer(last)) return `HTTP ${last.status} ${last.text}`.trim();
  return last instanceof Error ? last.message : String(last);
}
