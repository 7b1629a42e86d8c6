/**
 * Pilots on a real Grid Engine through the whole control plane: the embedded backend's Step Functions run the
 * launch Lambda, which logs in to the test bed's sshd (127.0.0.1:2222 as hpcuser), writes the `#$` job script
 * and submits it with `qsub`; Grid Engine's execd starts the agent, which calls back over HTTP and runs units;
 * the job checks read `qstat` and cancel runs `qdel`.
 * Skipped, saying why, when the bed or Grid Engine is not up (scripts/testbed.sh up; scripts/testbed.sh sge up).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed, vi } from 'vitest';
import { Context, PilotManager, PilotState, Session, UnitManager, UnitState } from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { agentPids, unitProcesses, until } from './e2e.ts';
import { readSgeTestbed, sgeJobState } from './support/testbed.ts';

const tb = readSgeTestbed();
const skip = 'skip' in tb ? tb.skip : undefined;
const env = 'env' in tb ? tb.env : {};

/** Waits (bounded) until a job has left Grid Engine: a deleted job shows `dr`/`dqw` for a moment. */
function gone(jobId: string): Promise<true> {
  return until(
    `job ${jobId} gone from qstat`,
    () => (sgeJobState(env, jobId) === '' ? true : undefined),
    30_000,
    250,
  );
}

describe.skipIf(skip !== undefined)(`pilots on Grid Engine${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let backend: Backend;
  let session: Session;
  let pmgr: PilotManager;

  beforeAll(async () => {
    backend = await startBackend({ heartbeatSeconds: 8, jobCheckSeconds: 2, activateTimeoutSeconds: 120 });
    session = await Session.create({ endpoint: backend.apiUrl });
    await session.addContext(
      new Context('ssh', { userId: 'hpcuser', userKey: env.SORTIE_TESTBED_KEY ?? '' }),
    );
    pmgr = await PilotManager.create(session);
    const local = JSON.parse(
      readFileSync(new URL('../resources/local.json', import.meta.url), 'utf8'),
    ) as Record<string, Record<string, unknown>>;
    // local.sge with every job submitted on user hold (`qsub -h`): it stays queued until released or deleted.
    await session.addResourceConfig({
      'sge.held': {
        ...local.sge,
        description: 'Grid Engine test bed, jobs held in the queue',
        batchOptions: ['-h'],
      },
      // An output path Grid Engine cannot open: the job goes to error state (Eqw) and can never start.
      'sge.badout': {
        ...local.sge,
        description: 'Grid Engine test bed, jobs that cannot open their output file',
        batchOptions: ['-o /nonexistent/dir/agent.out'],
      },
    });
  }, 60_000);

  afterAll(async () => {
    await session?.close({ timeout: 30 }).catch(() => {});
    await backend?.close();
  });

  it('runs units on local.sge in a parallel-environment job, then ends cleanly on cancel', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'local.sge', runtime: 10, cores: 2 });
    onTestFailed(() => pilot.cancel().catch(() => {}));
    await pilot.wait({ state: [PilotState.ACTIVE, PilotState.FAILED], timeout: 90 });
    expect(pilot.state, pilot.log.join('\n')).toBe(PilotState.ACTIVE);
    // The agent read its slots from PE_HOSTFILE: this host, the two slots of `-pe smp 2`.
    expect(pilot.resourceDetail?.lrms).toBe('SGE');
    expect(pilot.resourceDetail?.nodeDetails).toEqual([{ name: env.SORTIE_SGE_NODE, cores: 2, gpus: 0 }]);
    // Grid Engine may still list the job as 't' (transferring) for a moment after its script started.
    await vi.waitFor(() => expect(sgeJobState(env, pilot.jobId ?? '')).toBe('r'), { timeout: 10_000 });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const units = await umgr.submitUnits(
      Array.from({ length: 6 }, (_, i) => ({
        executable: '/bin/sh',
        arguments: ['-c', `echo $JOB_ID $NSLOTS unit ${i}`],
      })),
    );
    await umgr.waitUnits({ timeout: 90 });
    for (const [i, u] of units.entries()) {
      expect(u.state, u.stderr).toBe(UnitState.DONE);
      // Units run inside the Grid Engine job that Sortie recorded for the pilot.
      expect(u.stdout?.trim()).toBe(`${pilot.jobId} 2 unit ${i}`);
    }
    await pilot.cancel();
    expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
    expect(await gone(pilot.jobId ?? '')).toBe(true);
  }, 180_000);

  it('a one-core pilot (no parallel environment, so no PE_HOSTFILE) takes its slot from NSLOTS', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'local.sge', runtime: 10, cores: 1 });
    onTestFailed(() => pilot.cancel().catch(() => {}));
    await pilot.wait({ state: [PilotState.ACTIVE, PilotState.FAILED], timeout: 90 });
    expect(pilot.state, pilot.log.join('\n')).toBe(PilotState.ACTIVE);
    expect(pilot.resourceDetail?.lrms).toBe('SGE');
    expect(pilot.resourceDetail?.cores).toBe(1);
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const [u] = await umgr.submitUnits([{ executable: '/usr/bin/id', arguments: ['-un'] }]);
    await umgr.waitUnits({ timeout: 90 });
    expect(u?.state, u?.stderr).toBe(UnitState.DONE);
    expect(u?.stdout?.trim()).toBe('hpcuser');
    await pilot.cancel();
    expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
    expect(await gone(pilot.jobId ?? '')).toBe(true);
  }, 180_000);

  it('cancels a pilot whose job is held in the queue, and the job is gone', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'sge.held', runtime: 10, cores: 2 });
    onTestFailed(() => pilot.cancel().catch(() => {}));
    await pilot.wait({ state: [PilotState.PENDING_ACTIVE, PilotState.FAILED], timeout: 90 });
    expect(pilot.state, pilot.log.join('\n')).toBe(PilotState.PENDING_ACTIVE);
    // Queued on user hold, as the job checks see it too (they keep the pilot waiting, not failed).
    expect(sgeJobState(env, pilot.jobId ?? '')).toBe('hqw');
    await pilot.cancel();
    expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
    expect(await gone(pilot.jobId ?? '')).toBe(true);
  }, 150_000);

  it('a job Grid Engine cannot start (Eqw) fails the pilot with its reason, and the job is deleted', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'sge.badout', runtime: 10, cores: 1 });
    expect(await pilot.wait({ timeout: 90 })).toBe(PilotState.FAILED);
    const log = pilot.log.join('\n');
    expect(log).toMatch(/ended before its agent became active: Eqw/);
    expect(log).toContain(`can't open output file "/nonexistent/dir/agent.out"`);
    // The pilot's end ran qdel: a job in error state would otherwise stay in the queue forever.
    expect(await gone(pilot.jobId ?? '')).toBe(true);
  }, 150_000);

  it('an agent killed with SIGKILL: the pilot FAILS, its job ends and no unit process outlives it', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'local.sge', runtime: 10, cores: 2 });
    onTestFailed(() => pilot.cancel().catch(() => {}));
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const units = await umgr.submitUnits([
      { executable: '/bin/sleep', arguments: ['300'] },
      { executable: '/bin/sh', arguments: ['-c', 'sleep 300 & sleep 300; wait'] },
    ]);
    await umgr.waitUnits({ uids: units.map((u) => u.uid), state: UnitState.EXECUTING, timeout: 90 });
    const mine = () => units.flatMap((u) => unitProcesses(session.uid, u.uid));
    // EXECUTING is recorded before the spawn (write-ahead): wait for the processes themselves.
    await until('both units running', () => (mine().length >= 2 ? true : undefined), 30_000);
    const agents = await until(
      'the agent process',
      () => {
        const found = agentPids(session.uid, pilot.uid);
        return found.length ? found : undefined;
      },
      10_000,
    );
    for (const pid of agents) process.kill(pid, 'SIGKILL');

    expect(await pilot.wait({ timeout: 90 })).toBe(PilotState.FAILED);
    // Units run in their own sessions, out of reach of the job's SIGKILL: the pilot's end swept them.
    await until('no unit process left', () => (mine().length === 0 ? true : undefined), 30_000);
    expect(await umgr.waitUnits({ uids: units.map((u) => u.uid), timeout: 30 })).toEqual([
      UnitState.FAILED,
      UnitState.FAILED,
    ]);
    expect(await gone(pilot.jobId ?? '')).toBe(true);
  }, 180_000);
});
