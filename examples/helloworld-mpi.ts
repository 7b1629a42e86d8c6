/**
 * Hello world with MPI (RP's helloworld_mpi.py): one pilot of 2 cores on `local.localhost`, whose MPI
 * launch method is MPIRUN (as in RP's config), and 2 MPI units of 2 ranks each. Every rank says hello
 * with its rank, the world size and its host; a unit's stdout holds one line per rank. RP's example runs
 * an mpi4py script; this one lets each rank's shell read OpenMPI's rank variables, so it needs only
 * `mpirun` (OpenMPI) on PATH. Exit code 0 only when every unit is DONE with both ranks' lines.
 */
import os from 'node:os';
import { PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { type ExampleOptions, type ExampleResult, follow, isMain, runMain, withBackend } from './harness.ts';

/** Ranks per unit. */
export const RANKS = 2;

/** Runs the workload against `endpoint`; returns the final units and the pilot. */
export async function helloworldMpi(endpoint: string, opts: ExampleOptions = {}): Promise<ExampleResult> {
  const log = opts.log ?? console.log;
  const session = await Session.create({ endpoint, name: 'helloworld-mpi' });
  try {
    log(`session ${session.uid}`);
    const pmgr = await PilotManager.create(session);
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: RANKS });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const finish = follow(umgr, opts);
    const units = await umgr.submitUnits(
      Array.from({ length: 2 }, () => ({
        executable: '/bin/sh',
        // `\$` leaves each variable to the rank's own shell: in launch.sh the argument is double-quoted.
        arguments: [
          '-c',
          'echo Hello, World! I am rank \\$OMPI_COMM_WORLD_RANK of \\$OMPI_COMM_WORLD_SIZE on \\$(hostname)',
        ],
        cores: RANKS,
        mpi: true,
        // OpenMPI refuses to run as root unless told so (CI containers run as root).
        ...(process.getuid?.() === 0
          ? { environment: { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' } }
          : {}),
      })),
    );
    await umgr.waitUnits({ timeout: 120 });
    finish(units);
    return { units, pilots: [pilot] };
  } finally {
    await session.close({ timeout: 60 });
  }
}

/** What should have happened, as a list of deviations (empty when all is well). */
export function checkHelloworldMpi({ units }: ExampleResult): string[] {
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
    const problems = checkHelloworldMpi(await withBackend((endpoint) => helloworldMpi(endpoint)));
    for (const p of problems) console.log(`unexpected: ${p}`);
    console.log(problems.length ? 'FAILED' : 'every rank said hello');
    return problems.length === 0;
  });
}
