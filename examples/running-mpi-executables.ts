/**
 * Running MPI executables (RP's running_mpi_executables.py): one pilot and four MPI units of a Python
 * mpi4py program, bound directly to the pilot, with pilot and unit state callbacks; the script prints each
 * unit's state, exit code, times and stdout. RP's pilot has 16 cores and its units 8 ranks each; here the
 * pilot has the host's 2 cores on `local.localhost` (MPIRUN, as in RP's config) and each unit 2 ranks, so the
 * units run one after the other. RP stages `helloworld_mpi.py` into each unit's sandbox; Sortie does not run
 * staging directives yet, so the units name the program where it lies. Needs OpenMPI's `mpirun` and Debian's
 * mpi4py (`/usr/bin/python3`). Exit code 0 only when every unit is DONE with one line per rank.
 */
import os from 'node:os';
import path from 'node:path';
import { PilotManager, PilotState, Session, UnitManager, UnitState } from '../client/index.ts';
import { type ExampleOptions, type ExampleResult, isMain, runMain, withBackend } from './harness.ts';

/** Ranks per unit (RP: 8 on a 16-core pilot). */
export const RANKS = 2;
/** The MPI program, beside this file. */
export const PROGRAM = path.join(import.meta.dirname, 'helloworld_mpi.py');
/** The Python that has mpi4py (Debian's python3-mpi4py). */
export const PYTHON = '/usr/bin/python3';

/** Runs the workload against `endpoint`; returns the final units and the pilot. */
export async function runningMpiExecutables(
  endpoint: string,
  opts: ExampleOptions = {},
): Promise<ExampleResult> {
  const log = opts.log ?? console.log;
  const session = await Session.create({ endpoint, name: 'running-mpi-executables' });
  try {
    const pmgr = await PilotManager.create(session);
    pmgr.registerCallback((pilot, state) => {
      log(`[Callback]: ComputePilot '${pilot.uid}' state: ${state}.`);
    });
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 15, cores: RANKS });
    const umgr = await UnitManager.create(session, 'direct_submission');
    umgr.registerCallback((unit, state) => {
      log(`[Callback]: ComputeUnit  '${unit.uid}' state: ${state}.`);
    });
    await umgr.addPilots(pilot);
    const units = await umgr.submitUnits(
      Array.from({ length: 4 }, () => ({
        executable: PYTHON,
        arguments: [PROGRAM],
        // These two make it an MPI task: its cores are its ranks.
        cores: RANKS,
        mpi: true,
        // OpenMPI refuses to run as root unless told so (CI runs as root).
        ...(process.getuid?.() === 0
          ? { environment: { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' } }
          : {}),
      })),
    );
    await umgr.waitUnits({ timeout: 300 });
    for (const u of units) {
      log(
        `* Task ${u.uid} - state: ${u.state}, exit code: ${u.exitCode}, started: ${u.startTime?.toISOString()}, finished: ${u.stopTime?.toISOString()}, stdout: ${u.stdout}`,
      );
    }
    if (pilot.state === PilotState.FAILED) log(`pilot FAILED:\n${pilot.log.join('\n')}`);
    return { units, pilots: [pilot] };
  } finally {
    await session.close({ timeout: 60 });
  }
}

/** What should have happened, as a list of deviations (empty when all is well). */
export function checkRunningMpiExecutables({ units }: ExampleResult): string[] {
  const want = Array.from(
    { length: RANKS },
    (_, r) => `Hello, World! I am rank ${r} of ${RANKS} on ${os.hostname()}`,
  ).join('\n');
  return units.flatMap((u) => {
    if (u.state !== UnitState.DONE) return [`${u.uid}: ${u.state}, expected Done (${u.stderr})`];
    const got = (u.stdout ?? '').trim().split('\n').sort().join('\n');
    return got === want
      ? []
      : [`${u.uid}: stdout ${JSON.stringify(u.stdout)}, expected ${JSON.stringify(want)}`];
  });
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const problems = checkRunningMpiExecutables(
      await withBackend((endpoint) => runningMpiExecutables(endpoint)),
    );
    for (const p of problems) console.log(`unexpected: ${p}`);
    console.log(problems.length ? 'FAILED' : 'every MPI unit ran on all its ranks');
    return problems.length === 0;
  });
}
