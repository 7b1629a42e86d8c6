/**
 * Unit placement end to end on the embedded backend with fork pilots on this host: a pilot bigger than
 * its allocation FAILS (RP's error_handling.py), a unit bound to a too-small pilot is refused at submit,
 * a unit that can never fit ends FAILED while the units after it run at the pilot's real width, MPI
 * without an MPI launch method FAILS, two concurrent 1-GPU units see different GPUs, `$VAR` arguments
 * expand (RP's simple_bot), and long output is kept as a marked 64 KiB tail with the whole file in the
 * sandbox.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ComputeUnit,
  PilotManager,
  PilotState,
  Session,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { OUTPUT_TAIL_BYTES } from '../core/output.ts';
import { type Backend, startBackend } from '../local/backend.ts';

let backend: Backend;
const hasMpirun = spawnSync('mpirun', ['--version']).status === 0;
const sessions: Session[] = [];

const forkConfig = {
  description: 'test: this host',
  schemas: { local: {} },
  defaultSchema: 'local',
  jobManager: 'fork',
  coresPerNode: 2,
  validRoots: ['$HOME', '/tmp', '/var/tmp'],
  launchMethods: { order: ['FORK'] },
};

/** Test resources, added to each test's session through the API (configs are per session). */
const TEST_CONFIGS = {
  // Two declared GPUs on a host that has none: the agent hands out ids, the units only see the lists.
  'local.gpu-test': {
    ...forkConfig,
    gpusPerNode: 2,
    gpuEnv: ['CUDA_VISIBLE_DEVICES', 'ROCR_VISIBLE_DEVICES'],
  },
  // MPIRUN as the MPI launch method (OpenMPI on this host), FORK for the rest.
  'local.mpi-test': { ...forkConfig, launchMethods: { order: ['FORK', 'MPIRUN'] } },
  // Oversubscribed: the submit check cannot judge it, so a too-big unit reaches the agent.
  'local.oversubscribed': { ...forkConfig, oversubscribe: true },
};

beforeAll(async () => {
  backend = await startBackend({});
});
afterAll(async () => {
  for (const s of sessions) await s.close({ timeout: 20 }).catch(() => {});
  await backend?.close();
});

async function open(name: string) {
  const session = await Session.create({ endpoint: backend.apiUrl, name });
  sessions.push(session);
  await session.addResourceConfig(TEST_CONFIGS);
  const pmgr = await PilotManager.create(session);
  const umgr = await UnitManager.create(session, 'direct_submission');
  return { session, pmgr, umgr };
}

/** Most units running at once, from their start and stop times (a stop and a start at one instant do not overlap). */
function maxConcurrent(units: ComputeUnit[], weight: (u: ComputeUnit) => number = () => 1): number {
  const events = units.flatMap((u) => [
    { t: u.startTime?.getTime() ?? 0, d: weight(u) },
    { t: u.stopTime?.getTime() ?? 0, d: -weight(u) },
  ]);
  events.sort((a, b) => a.t - b.t || a.d - b.d);
  let cur = 0;
  let max = 0;
  for (const e of events) {
    cur += e.d;
    max = Math.max(max, cur);
  }
  return max;
}

describe('placement on fork pilots', () => {
  it('a pilot asking for more cores than its allocation has ends FAILED with the reason', async () => {
    const { pmgr } = await open('too-big-pilot');
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 1_000_000 });
    await pmgr.waitPilots({ uids: [pilot.uid], state: [PilotState.FAILED, PilotState.DONE], timeout: 60 });
    expect(pilot.state).toBe(PilotState.FAILED);
    const log = pilot.log.join('\n');
    expect(log).toContain('pilot asks for 1000000 cores and 0 GPUs');
    expect(log).toContain(`has ${os.availableParallelism()} cores`);
    expect(log).toContain("resource 'local.localhost' does not allow oversubscription");
  });

  it('refuses at submit a unit bound to a pilot too small for it', async () => {
    const { pmgr, umgr } = await open('too-big-unit-submit');
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 1 });
    await umgr.addPilots(pilot);
    await expect(
      umgr.submitUnits([{ executable: '/bin/true' }, { executable: '/bin/true', cores: 2 }]),
    ).rejects.toThrow(
      `submitUnits.descriptions[1]: bound to ${pilot.uid}: unit needs 2 cores and 0 GPUs on one node (not MPI), but the pilot has 1 cores and 0 GPUs`,
    );
    await expect(umgr.submitUnits([{ executable: '/bin/true', gpus: 1 }])).rejects.toThrow(
      /1 core and 1 GPU/,
    );
  });

  it('a unit that can never fit ends FAILED at once; the units after it run at the real width', async () => {
    const { pmgr, umgr } = await open('too-big-unit-agent');
    const pilot = await pmgr.submitPilots({ resource: 'local.oversubscribed', runtime: 10, cores: 2 });
    await umgr.addPilots(pilot);
    const small = { executable: '/bin/sleep', arguments: ['0.2'] };
    const units = await umgr.submitUnits([
      { executable: '/bin/true', cores: 3 },
      ...Array.from({ length: 8 }, () => small),
      { executable: '/bin/true', mpi: true },
    ]);
    await umgr.waitUnits({ timeout: 120 });
    await pmgr.waitPilots({
      uids: [pilot.uid],
      state: [PilotState.ACTIVE, PilotState.DONE, PilotState.FAILED],
    });
    const [big, ...rest] = units;
    const mpi = rest.pop();
    expect(big?.state).toBe(UnitState.FAILED);
    expect(big?.log.join('\n')).toContain(
      'unit needs 3 cores and 0 GPUs on one node (not MPI), but the pilot has 1 node with 2 cores and 0 GPUs',
    );
    expect(big?.stateHistory.map((e) => e.state)).not.toContain(UnitState.EXECUTING);
    expect(mpi?.state).toBe(UnitState.FAILED);
    expect(mpi?.log.join('\n')).toContain(
      'unit is MPI (mpi: true), but the resource has no MPI launch method',
    );
    for (const u of rest) expect(u.state, u.uid).toBe(UnitState.DONE);
    expect(maxConcurrent(rest)).toBeLessThanOrEqual(2);
    expect(pilot.resourceDetail).toMatchObject({ lrms: 'FORK', cores: 2, nodes: [os.hostname()] });
  });

  it('two concurrent 1-GPU units see different GPUs; a unit without GPUs sees none', async () => {
    const { pmgr, umgr } = await open('gpus');
    const pilot = await pmgr.submitPilots({ resource: 'local.gpu-test', runtime: 10, cores: 2, gpus: 2 });
    await umgr.addPilots(pilot);
    // Each GPU unit marks itself ready and waits for the other, so they provably run at the same time.
    // `\$` keeps a `$` for the inner shell: arguments are double-quoted in the launch script (RP's rule).
    const together =
      'touch "\\$RP_PILOT_SANDBOX/ready.\\$RP_UNIT_ID"; n=0; ' +
      'until [ \\$(ls \\$RP_PILOT_SANDBOX | grep -c ^ready) -ge 2 ] || [ \\$n -ge 600 ]; do sleep 0.05; n=\\$((n+1)); done; ' +
      'echo \\$CUDA_VISIBLE_DEVICES/\\$ROCR_VISIBLE_DEVICES/\\$(ls \\$RP_PILOT_SANDBOX | grep -c ^ready)';
    const gpuUnit = { executable: '/bin/bash', arguments: ['-c', together], gpus: 1 };
    const units = await umgr.submitUnits([
      gpuUnit,
      gpuUnit,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell variable, on purpose
      { executable: '/bin/bash', arguments: ['-c', 'echo "[${CUDA_VISIBLE_DEVICES-unset}]"'] },
    ]);
    await umgr.waitUnits({ timeout: 120 });
    await pmgr.waitPilots({
      uids: [pilot.uid],
      state: [PilotState.ACTIVE, PilotState.DONE, PilotState.FAILED],
    });
    for (const u of units) expect(u.state, `${u.uid} ${u.stderr}`).toBe(UnitState.DONE);
    const seen = units.slice(0, 2).map((u) => u.stdout?.trim());
    expect(seen.sort()).toEqual(['0/0/2', '1/1/2']);
    expect(units[2]?.stdout).toBe('[]\n');
    expect(pilot.resourceDetail).toMatchObject({
      gpus: 2,
      nodeDetails: [{ name: os.hostname(), cores: 2, gpus: 2 }],
    });
  });

  it("expands $VAR arguments from the unit's environment and keeps a marked 64 KiB tail of long output", async () => {
    const { pmgr, umgr } = await open('quoting-and-tails');
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 1 });
    await umgr.addPilots(pilot);
    const units = await umgr.submitUnits([
      // RP's tutorial/simple_bot.py: arguments refer to the unit's environment.
      {
        executable: '/bin/echo',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell variable, on purpose
        arguments: ['I am unit $CU_NO of ${CU_TOTAL}'],
        environment: { CU_NO: '1', CU_TOTAL: '2' },
      },
      // 200,000 lines of "line N": about 1.3 MB of stdout.
      { executable: '/usr/bin/seq', arguments: ['-f', 'line %g', '200000'] },
    ]);
    await umgr.waitUnits({ timeout: 120 });
    const [bot, long] = units;
    expect(bot?.stdout).toBe('I am unit 1 of 2\n');
    expect(long?.state).toBe(UnitState.DONE);
    const out = long?.stdout ?? '';
    const file = path.join(long?.workingDirectory ?? '', 'STDOUT');
    const size = statSync(file).size;
    expect(out).toMatch(
      new RegExp(`^\\[Sortie: first ${size - OUTPUT_TAIL_BYTES} bytes cut; the whole file is ${file}\\]\\n`),
    );
    expect(out.endsWith('line 199999\nline 200000\n')).toBe(true);
    expect(Buffer.byteLength(out.slice(out.indexOf('\n') + 1))).toBe(OUTPUT_TAIL_BYTES);
    expect(readFileSync(file, 'utf8').startsWith('line 1\nline 2\n')).toBe(true);
    // The script the unit ran from stays in its sandbox.
    expect(readFileSync(path.join(bot?.workingDirectory ?? '', 'launch.sh'), 'utf8')).toContain(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell variable, on purpose
      'exec "/bin/echo" "I am unit $CU_NO of ${CU_TOTAL}"',
    );
  });

  it.skipIf(!hasMpirun)('an MPI unit runs its ranks through MPIRUN (RP helloworld_mpi)', async () => {
    const { pmgr, umgr } = await open('mpi');
    const pilot = await pmgr.submitPilots({ resource: 'local.mpi-test', runtime: 10, cores: 2 });
    await umgr.addPilots(pilot);
    const [mpi, plain] = await umgr.submitUnits([
      {
        executable: '/bin/sh',
        // `\$` leaves the variables to each rank's shell (arguments are double-quoted in launch.sh).
        arguments: ['-c', 'echo rank \\$OMPI_COMM_WORLD_RANK of \\$OMPI_COMM_WORLD_SIZE on \\$(hostname)'],
        cores: 2,
        mpi: true,
        // OpenMPI refuses root unless told: CI runs as root.
        environment: { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' },
      },
      { executable: '/bin/echo', arguments: ['$RP_CORES core'] },
    ]);
    await umgr.waitUnits({ timeout: 120 });
    expect(mpi?.state, mpi?.stderr).toBe(UnitState.DONE);
    const lines = (mpi?.stdout ?? '').trim().split('\n').sort();
    expect(lines).toEqual([`rank 0 of 2 on ${os.hostname()}`, `rank 1 of 2 on ${os.hostname()}`]);
    expect(mpi?.executionLocations).toEqual([os.hostname()]);
    expect(plain?.stdout).toBe('1 core\n');
  });
});
