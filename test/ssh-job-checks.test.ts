/**
 * Job checks through the whole control plane (issue 11 items 5 and 8, issue 13 item 1):
 * - on the sshd + SLURM test bed: a pilot whose job is held in the queue far past its activateTimeout
 *   is released, becomes ACTIVE and runs its units, and the recorded history shows the checks backed off;
 *   an ACTIVE pilot whose agent is SIGKILLed (no word from it; SLURM ends its job) fails at the next job check with
 *   the batch system's view, long before its heartbeat budget, and leaves no unit process;
 * - on local.localhost: units killed at the pilot's walltime are FAILED "pilot runtime reached".
 * The SLURM part skips, saying why, when the test bed is down.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { GetExecutionHistoryCommand, type HistoryEvent, SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Context, PilotManager, PilotState, Session, UnitManager, UnitState } from '../client/index.ts';
import { RUNTIME_REACHED } from '../core/pilot-end.ts';
import { executionArn } from '../functions/lib/pilots.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { agentPids, unitProcesses, until } from './e2e.ts';
import { readTestbed } from './support/testbed.ts';

const tb = readTestbed();
const skip = 'skip' in tb ? tb.skip : undefined;
const env = 'env' in tb ? tb.env : {};

/** A SLURM command as root on the test bed (scontrol release, scancel). */
function slurm(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, {
    env: { ...process.env, SLURM_CONF: env.SORTIE_TESTBED_SLURM_CONF ?? '' },
    encoding: 'utf8',
  }).trim();
}

let backend: Backend;

beforeAll(async () => {
  // A heartbeat budget far above the job checks' intervals: a pilot that fails fast failed by a check.
  backend = await startBackend({ heartbeatSeconds: 60, jobCheckSeconds: 1, activateTimeoutSeconds: 120 });
}, 60_000);

afterAll(async () => {
  await backend?.close();
});

/** The timeouts of the pilot's waiting turns (WaitActive, then Active), as the execution recorded them. */
async function waitTurns(sessionId: string, pilotId: string): Promise<number[]> {
  const sfn = new SFNClient({});
  const events: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const out = await sfn.send(
      new GetExecutionHistoryCommand({ executionArn: executionArn(sessionId, pilotId), nextToken }),
    );
    events.push(...(out.events ?? []));
    nextToken = out.nextToken;
  } while (nextToken);
  return events.flatMap((e) =>
    e.type === 'TaskScheduled' && e.taskScheduledEventDetails?.resource === 'invoke.waitForTaskToken'
      ? [e.taskScheduledEventDetails.timeoutInSeconds ?? 0]
      : [],
  );
}

describe.skipIf(skip !== undefined)(`job checks on SLURM${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let session: Session;
  let pmgr: PilotManager;

  beforeAll(async () => {
    session = await Session.create({ endpoint: backend.apiUrl });
    await session.addContext(
      new Context('ssh', { userId: 'hpcuser', userKey: env.SORTIE_TESTBED_KEY ?? '' }),
    );
    pmgr = await PilotManager.create(session);
    const local = JSON.parse(
      readFileSync(new URL('../resources/local.json', import.meta.url), 'utf8'),
    ) as Record<string, Record<string, unknown>>;
    await session.addResourceConfig({
      // Every job is submitted held (sbatch --hold): it stays PENDING (JobHeldUser) until released.
      'held.slurm': {
        ...local.slurm,
        description: 'the SLURM test bed, jobs submitted held; seconds-scale job checks',
        batchOptions: ['--hold'],
        jobCheckSeconds: 1,
        maxJobCheckSeconds: 4,
      },
      'checked.slurm': {
        ...local.slurm,
        description: 'the SLURM test bed with seconds-scale job checks',
        jobCheckSeconds: 1,
        maxJobCheckSeconds: 2,
      },
    });
  }, 60_000);

  afterAll(async () => {
    await session?.close({ timeout: 30 }).catch(() => {});
  });

  it('a job held in the queue past its activateTimeout, then released, becomes ACTIVE and runs units', async () => {
    const pilot = await pmgr.submitPilots({
      resource: 'held.slurm',
      runtime: 5,
      cores: 1,
      activateTimeout: 5,
    });
    try {
      // Held until the checks have backed off to their cap (4 s): by then the job has waited ~15 s in the
      // queue, three times the pilot's activateTimeout, which used to count from submission.
      const turns = await until(
        'job checks backed off to their cap',
        async () => {
          const t = await waitTurns(session.uid, pilot.uid);
          return t.includes(4) ? t : undefined;
        },
        90_000,
        500,
      );
      expect(turns[0]).toBe(1);
      for (let i = 1; i < turns.length; i++) expect(turns[i]).toBeGreaterThanOrEqual(turns[i - 1] as number);
      await pilot.refresh();
      expect(pilot.state, pilot.log.join('\n')).toBe(PilotState.PENDING_ACTIVE);
      const queued = Date.parse(pilot.stateHistory.at(-1)?.time ?? '');
      expect(pilot.jobId).toMatch(/^\d+$/);
      slurm('scontrol', ['release', pilot.jobId ?? '']);

      await pilot.wait({ state: [PilotState.ACTIVE, PilotState.FAILED], timeout: 60 });
      expect(pilot.state, pilot.log.join('\n')).toBe(PilotState.ACTIVE);
      // The recorded times say it: queued for longer than activateTimeout before it ran.
      const active = Date.parse(pilot.stateHistory.find((h) => h.state === PilotState.ACTIVE)?.time ?? '');
      expect(active - queued).toBeGreaterThan(5_000);
      const umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
      const units = await umgr.submitUnits([
        { executable: '/bin/echo', arguments: ['held, then ran'] },
        { executable: '/bin/hostname' },
      ]);
      await umgr.waitUnits({ timeout: 60 });
      for (const u of units) expect(u.state, u.stderr).toBe(UnitState.DONE);
      expect(units[0]?.stdout).toContain('held, then ran');
      // The active phase is checked too, from the first interval again.
      const after = await until(
        'an Active turn',
        async () => {
          const t = await waitTurns(session.uid, pilot.uid);
          return t.length > turns.length + 1 ? t : undefined;
        },
        30_000,
        250,
      );
      expect(after.at(-1)).toBeLessThanOrEqual(2 + 4);
    } finally {
      await pilot.cancel();
    }
    expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
  }, 180_000);

  it('an ACTIVE pilot whose agent is SIGKILLed (its job ends) fails at the next job check, with the batch view, no orphans', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'checked.slurm', runtime: 5, cores: 2 });
    await pilot.wait({ state: [PilotState.ACTIVE, PilotState.FAILED], timeout: 60 });
    expect(pilot.state, pilot.log.join('\n')).toBe(PilotState.ACTIVE);
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const [unit] = await umgr.submitUnits([{ executable: '/bin/sleep', arguments: ['300'] }]);
    await umgr.waitUnits({ state: UnitState.EXECUTING, timeout: 60 });
    await until('the unit process', () => (unitProcesses(session.uid).length ? true : undefined), 30_000);
    // SIGKILL to the agent, the job's main process: it cannot say goodbye, and SLURM ends the job.
    const agents = agentPids(session.uid, pilot.uid);
    expect(agents).toHaveLength(1);
    process.kill(agents[0] as number, 'SIGKILL');
    expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.FAILED);
    const log = pilot.log.join('\n');
    // Failed by the job check (reason and batch view), not by the 60 s heartbeat budget.
    expect(log).toMatch(new RegExp(`batch job ${pilot.jobId} ended while the pilot was active: finished`));
    expect(log).not.toMatch(/no heartbeat/);
    await unit?.wait({ timeout: 30 });
    expect(unit?.state).toBe(UnitState.FAILED);
    await until('no unit process left', () => (unitProcesses(session.uid).length ? undefined : true), 15_000);
  }, 180_000);

  it('a job cancelled outside Sortie (scancel: SIGTERM) fails its pilot saying so; its running unit is FAILED, not CANCELED', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'checked.slurm', runtime: 5, cores: 1 });
    await pilot.wait({ state: [PilotState.ACTIVE, PilotState.FAILED], timeout: 60 });
    expect(pilot.state, pilot.log.join('\n')).toBe(PilotState.ACTIVE);
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const [unit] = await umgr.submitUnits([{ executable: '/bin/sleep', arguments: ['300'] }]);
    await umgr.waitUnits({ state: UnitState.EXECUTING, timeout: 60 });
    slurm('scancel', [pilot.jobId ?? '']);
    expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.FAILED);
    await unit?.wait({ timeout: 30 });
    expect(unit?.state).toBe(UnitState.FAILED);
    expect(`${unit?.stderr}\n${unit?.log.join('\n')}`).toMatch(/SIGTERM|ended while the pilot was active/);
  }, 180_000);

  it('units of a pilot the user cancels stay CANCELED (RP), though the cancel reaches the agent as SIGTERM', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'checked.slurm', runtime: 5, cores: 1 });
    await pilot.wait({ state: [PilotState.ACTIVE, PilotState.FAILED], timeout: 60 });
    expect(pilot.state, pilot.log.join('\n')).toBe(PilotState.ACTIVE);
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const [unit] = await umgr.submitUnits([{ executable: '/bin/sleep', arguments: ['300'] }]);
    await umgr.waitUnits({ state: UnitState.EXECUTING, timeout: 60 });
    await pilot.cancel();
    expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
    await unit?.wait({ timeout: 30 });
    expect(unit?.state).toBe(UnitState.CANCELED);
  }, 180_000);
});

describe('walltime', () => {
  it('units killed because the pilot runtime ran out are FAILED "pilot runtime reached"; the pilot is DONE', async () => {
    const session = await Session.create({ endpoint: backend.apiUrl });
    try {
      const pmgr = await PilotManager.create(session);
      // One minute: the agent ends itself ~3 s before it (5 % margin) and kills what still runs.
      const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 1, cores: 1 });
      const umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
      const [unit] = await umgr.submitUnits([{ executable: '/bin/sleep', arguments: ['600'] }]);
      expect(await pilot.wait({ timeout: 120 })).toBe(PilotState.DONE);
      expect(pilot.log.join('\n')).toContain(RUNTIME_REACHED);
      await unit?.wait({ timeout: 30 });
      expect(unit?.state).toBe(UnitState.FAILED);
      expect(`${unit?.stderr}\n${unit?.log.join('\n')}`).toContain(RUNTIME_REACHED);
      expect(unit?.stateHistory.map((h) => h.state)).toContain(UnitState.EXECUTING);
      await until(
        'no unit process left',
        () => (unitProcesses(session.uid).length ? undefined : true),
        15_000,
      );
    } finally {
      await session.close({ timeout: 30 });
    }
  }, 150_000);
});
