/**
 * Write-ahead of unit starts (exactly-once start of non-restartable units): before a unit's process is
 * spawned, the control plane records it EXECUTING, so that if the agent dies right after the spawn the
 * sweep fails the unit (its work may have begun) instead of rescheduling it to run a second time.
 *
 * Starts asked for in the same turn of the event loop (one scheduling pass of the agent) go out in one
 * `POST /agent/started`, so a pass that starts 100 units costs one request, not 100. One request is in
 * flight at a time: starts asked for meanwhile (units whose slots freed one by one) wait for it and go
 * together in the next, so a busy agent batches by itself while an idle one waits no longer than one pass.
 * Each unit's promise then says whether the control plane moved it (true: spawn it) or refused it (false:
 * it was cancelled or rescheduled meanwhile; do not spawn it).
 *
 * The same requests carry arms and disarms (agent/arm-ahead.ts): an arm resolves true when the control
 * plane marked the unit, a disarm when it took the mark off.
 *
 * Each request also carries the agent's pending state reports (when its reporter has none in flight):
 * at steady state a unit's end frees the cores the next start takes, so the end and the start go in one
 * request rather than two.
 */
import type { AgentApi, ArmReport, StartReport, UnitReport } from './api.ts';

/** Where the write-ahead takes reports to carry along (agent/reporter.ts `lend`). */
export interface ReportLender {
  lend():
    | { reports: UnitReport[]; done: (answer?: { applied: number; refused: number }) => void }
    | undefined;
}

/** Starts per request: well under the route's limit and the 6 MB body of a Lambda behind API Gateway. */
export const MAX_STARTS = 500;

interface Waiting {
  kind: 'start' | 'arm' | 'disarm';
  start: StartReport;
  resolve: (yes: boolean) => void;
  reject: (err: unknown) => void;
}

export class WriteAhead {
  private pending: Waiting[] = [];
  private scheduled = false;
  private inflight = false;
  /** Requests sent and units refused, for the agent's log and the tests. */
  requests = 0;
  refused = 0;

  constructor(
    private readonly api: Pick<AgentApi, 'started'>,
    /** Pending state reports ride along with each start request (one request instead of two). */
    private readonly reports?: ReportLender,
  ) {}

  /** Resolves true when the control plane recorded the start; rejects when it could not be asked. */
  start(start: StartReport): Promise<boolean> {
    return this.ask('start', start);
  }

  /** Resolves true when the unit is armed (it may be spawned without a start); rejects when not asked. */
  arm(unit: ArmReport): Promise<boolean> {
    return this.ask('arm', { ...unit, time: '' });
  }

  /** Resolves true when the unit's arm mark is off (it will not be spawned here). */
  disarm(unit: ArmReport): Promise<boolean> {
    return this.ask('disarm', { ...unit, time: '' });
  }

  private ask(kind: Waiting['kind'], start: StartReport): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.pending.push({ kind, start, resolve, reject });
      if (this.scheduled || this.inflight) return;
      this.scheduled = true;
      // setImmediate, not a timer: the batch is what one scheduling pass asked for, and it waits no longer.
      setImmediate(() => {
        this.scheduled = false;
        void this.send();
      });
    });
  }

  private async send(): Promise<void> {
    if (this.inflight || this.pending.length === 0) return;
    const batch = this.pending.splice(0, MAX_STARTS);
    this.inflight = true;
    this.requests++;
    const lent = this.reports?.lend();
    try {
      const of = (kind: Waiting['kind']) => batch.filter((w) => w.kind === kind);
      const mark = (w: Waiting) => ({
        uid: w.start.uid,
        lease: w.start.lease,
        ...(w.start.held ? { held: true as const } : {}),
      });
      const answer = await this.api.started(
        of('start').map((w) => w.start),
        lent?.reports,
        { arms: of('arm').map(mark), disarms: of('disarm').map(mark) },
      );
      lent?.done({ applied: answer.applied ?? 0, refused: answer.refused ?? 0 });
      const yes = {
        start: new Set(answer.started),
        arm: new Set(answer.armed ?? []),
        disarm: new Set(answer.disarmed ?? []),
      };
      for (const w of batch) {
        const ok = yes[w.kind].has(w.start.uid);
        if (!ok && w.kind === 'start') this.refused++;
        w.resolve(ok);
      }
    } catch (err) {
      lent?.done();
      for (const w of batch) w.reject(err);
    } finally {
      this.inflight = false;
      void this.send();
    }
  }
}
