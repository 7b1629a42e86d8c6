/**
 * The pilot machine's job checks (core/job-checks.ts): the back-off, the three phases' rules, and the
 * history budget of the longest life a pilot may have. Pure: the history is counted from the back-off
 * schedule and the per-turn cost that test/local-stepfunctions.test.ts measures on the embedded interpreter.
 */
import { describe, expect, it } from 'vitest';
import { parsePilotDescription } from '../core/descriptions.ts';
import {
  ACTIVATION_TIMEOUT_ERROR,
  AGENT_LOST_ERROR,
  type CheckInput,
  checkInterval,
  DEFAULT_MAX_JOB_CHECK_SECONDS,
  DEFAULT_MAX_QUEUE_SECONDS,
  decideCheck,
  HISTORY_LIMIT,
  historyEvents,
  JOB_ENDED_ERROR,
  OVERRAN_ERROR,
  QUEUE_TIMEOUT_ERROR,
} from '../core/job-checks.ts';
import { decidePilotEnd, lostUnit, RUNTIME_REACHED } from '../core/pilot-end.ts';
import { checkQueueTimeout, parseResourceConfig } from '../core/resources.ts';
import { PilotState, UnitState } from '../core/states.ts';

const policy = { firstSeconds: 30, maxSeconds: DEFAULT_MAX_JOB_CHECK_SECONDS };
const DAY = 24 * 3600;

describe('checkInterval: 30 s → 10 min, then a fraction of the time waited', () => {
  it('starts at the first interval and grows to the cap', () => {
    expect(checkInterval(0, policy)).toBe(30);
    expect(checkInterval(120, policy)).toBe(30);
    expect(checkInterval(400, policy)).toBe(100);
    expect(checkInterval(3600, policy)).toBe(600);
    expect(checkInterval(12 * 3600, policy)).toBe(600);
  });

  it('never shrinks as the wait goes on, and is a whole number of seconds, at least 1', () => {
    let last = 0;
    for (let t = 0; t < 30 * DAY; t += 997) {
      const i = checkInterval(t, policy);
      expect(Number.isInteger(i)).toBe(true);
      expect(i).toBeGreaterThanOrEqual(last);
      last = i;
    }
    expect(checkInterval(0, { firstSeconds: 0, maxSeconds: 0 })).toBe(1);
  });

  it('reaches the cap within 20 checks, and past 17 hours grows with the wait', () => {
    let t = 0;
    let n = 0;
    while (checkInterval(t, policy) < 600) {
      t += checkInterval(t, policy);
      n++;
    }
    expect(n).toBeLessThan(20);
    expect(checkInterval(7 * DAY, policy)).toBe(Math.ceil((7 * DAY) / 100));
  });
});

describe('the history of the longest allowed life stays well under 25,000 events', () => {
  it('7 days queued, then a 7-day walltime: under a third of the limit', () => {
    const events = historyEvents([DEFAULT_MAX_QUEUE_SECONDS, 600, 7 * DAY + 300], policy);
    expect(events).toBeLessThan(HISTORY_LIMIT / 3);
  });

  it('one simulated day of queue wait costs a few thousand events at most, and later days fewer', () => {
    const day1 = historyEvents([DAY], policy) - historyEvents([0], policy);
    const day7 = historyEvents([7 * DAY], policy) - historyEvents([6 * DAY], policy);
    expect(day1).toBeLessThan(2_000);
    expect(day7).toBeLessThan(day1);
  });

  it('even a year-long wait fits (the checks grow with the logarithm of the wait)', () => {
    expect(historyEvents([365 * DAY, 365 * DAY], policy)).toBeLessThan(HISTORY_LIMIT);
  });
});

const t0 = Date.parse('2026-12-04T00:00:00Z');
const base = (over: Partial<CheckInput>): CheckInput => ({
  now: t0,
  active: false,
  jobId: '42',
  job: { state: 'queued', detail: 'PENDING (JobHeldUser)' },
  queuedSince: t0,
  queueTimeout: DEFAULT_MAX_QUEUE_SECONDS,
  activateTimeout: 600,
  heartbeat: 60,
  activeTimeout: 3900,
  policy,
  ...over,
});

describe('decideCheck: queued', () => {
  it('waits while the job is queued, however long beyond the activation deadline', () => {
    const d = decideCheck(base({ now: t0 + 5 * 3600_000 }));
    expect(d).toMatchObject({ wait: 600, note: 'queued: queued (PENDING (JobHeldUser))' });
  });

  it("fails at the pilot's queue limit, with the batch system's words, and waits no longer than it", () => {
    expect(decideCheck(base({ now: t0 + 3000_000, queueTimeout: 3100 }))).toEqual({
      wait: 101,
      note: 'queued: queued (PENDING (JobHeldUser))',
    });
    const d = decideCheck(base({ now: t0 + 3200_000, queueTimeout: 3100 }));
    expect(d).toEqual({
      fail: {
        error: QUEUE_TIMEOUT_ERROR,
        reason: 'batch job 42 still queued after 3200 s (queue limit 3100 s): queued (PENDING (JobHeldUser))',
      },
    });
  });

  it('fails at once when the job ended before the agent called in', () => {
    const d = decideCheck(base({ job: { state: 'finished', detail: 'CANCELLED' } }));
    expect(d).toEqual({
      fail: {
        error: JOB_ENDED_ERROR,
        reason: 'batch job 42 ended before its agent became active: CANCELLED',
      },
    });
  });
});

describe('decideCheck: started, agent not yet active', () => {
  it('starts the activation deadline at the first check that sees the job running', () => {
    const now = t0 + 3 * DAY * 1000;
    const d = decideCheck(base({ now, job: { state: 'running', detail: 'RUNNING' } }));
    expect(d).toEqual({ wait: 30, runningSince: now });
  });

  it('fails past activateTimeout after that, not after submission', () => {
    const running = { state: 'running' as const, detail: 'RUNNING' };
    const since = t0 + DAY * 1000;
    expect(decideCheck(base({ now: since + 500_000, runningSince: since, job: running }))).toMatchObject({
      wait: 101,
    });
    const d = decideCheck(base({ now: since + 601_000, runningSince: since, job: running }));
    expect(d).toEqual({
      fail: {
        error: ACTIVATION_TIMEOUT_ERROR,
        reason:
          'agent did not become active within 600 s of its job starting; batch job 42: running (RUNNING)',
      },
    });
  });
});

describe('decideCheck: active', () => {
  const active = { active: true, activeSince: t0, job: { state: 'running' as const, detail: 'RUNNING' } };

  it('keeps checking while the agent heartbeats, backing off', () => {
    expect(decideCheck(base({ ...active, now: t0 + 10_000, lastHeartbeat: t0 + 5_000 }))).toEqual({
      wait: 30,
    });
    expect(decideCheck(base({ ...active, now: t0 + 3000_000, lastHeartbeat: t0 + 2990_000 }))).toEqual({
      wait: 600,
    });
  });

  it('fails a pilot whose job ended, with the batch view', () => {
    const d = decideCheck(
      base({ ...active, now: t0 + 20_000, job: { state: 'finished', detail: 'CANCELLED' } }),
    );
    expect(d).toEqual({
      fail: {
        error: JOB_ENDED_ERROR,
        reason: 'batch job 42 ended while the pilot was active: finished (CANCELLED)',
      },
    });
  });

  it('fails a silent agent past its heartbeat budget, though its job still runs', () => {
    const d = decideCheck(base({ ...active, now: t0 + 200_000, lastHeartbeat: t0 + 100_000 }));
    expect(d).toMatchObject({ fail: { error: AGENT_LOST_ERROR } });
    expect(decidePilotEnd({ error: { Error: AGENT_LOST_ERROR } }, PilotState.ACTIVE, 60).reason).toMatch(
      /no heartbeat for 60 s/,
    );
  });

  it('fails an agent that outlived its walltime and grace', () => {
    const d = decideCheck(base({ ...active, now: t0 + 3901_000, lastHeartbeat: t0 + 3900_000 }));
    expect(d).toMatchObject({ fail: { error: OVERRAN_ERROR } });
  });
});

describe('walltime and cancel: what the sweep does to the units a pilot could not finish', () => {
  it('units of a pilot ended by its walltime are FAILED, "pilot runtime reached"', () => {
    expect(lostUnit('pilot.0000', PilotState.DONE, RUNTIME_REACHED)).toEqual({
      state: UnitState.FAILED,
      reason: 'pilot runtime reached (pilot pilot.0000)',
    });
  });

  it('units of a cancelled pilot stay CANCELED (RP), of a failed one FAILED with its reason', () => {
    expect(lostUnit('p', PilotState.CANCELED, 'cancelled by user').state).toBe(UnitState.CANCELED);
    expect(lostUnit('p', PilotState.FAILED, 'job gone')).toEqual({
      state: UnitState.FAILED,
      reason: 'pilot p ended Failed: job gone',
    });
  });
});

describe('the new keys', () => {
  it('a pilot description takes activateTimeout and queueTimeout (seconds, RP spellings too)', () => {
    const d = parsePilotDescription({
      resource: 'x.y',
      runtime: 1,
      cores: 1,
      activate_timeout: 60,
      queueTimeout: 3600,
    });
    expect(d).toMatchObject({ activateTimeout: 60, queueTimeout: 3600 });
    expect(() => parsePilotDescription({ resource: 'x.y', runtime: 1, cores: 1, queueTimeout: -1 })).toThrow(
      'pilot description queueTimeout: must be a positive integer, got -1',
    );
  });

  it("a pilot's queueTimeout may not exceed its resource's maxQueueTimeout", () => {
    const rc = parseResourceConfig('x.y', {
      description: 'd',
      schemas: { local: {} },
      defaultSchema: 'local',
      jobManager: 'fork',
      coresPerNode: 1,
      maxQueueTimeout: 3600,
      jobCheckSeconds: 5,
      maxJobCheckSeconds: 60,
      activateTimeout: 120,
    });
    expect(() => checkQueueTimeout('x.y', rc, 3600)).not.toThrow();
    expect(() => checkQueueTimeout('x.y', rc, 3601)).toThrow(
      "pilot description.queueTimeout: 3601 s exceeds resource 'x.y' maxQueueTimeout of 3600 s",
    );
    expect(() => parseResourceConfig('x.y', { ...rc, maxJobCheckSeconds: 0 })).toThrow(
      /maxJobCheckSeconds: must be a positive integer/,
    );
  });
});
