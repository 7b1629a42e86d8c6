/**
 * Failing units (RP's 02_failing_tasks.py): one pilot, 20 units of `/bin/date`, except that every 10th
 * runs the missing executable `/bin/data`. Those end FAILED with the shell's exit code 127 and a stderr
 * naming the executable; the others end DONE. Exit code 0 only when exactly that happened.
 */
import { PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { type ExampleOptions, type ExampleResult, follow, isMain, runMain, withBackend } from './harness.ts';

/** The executable that does not exist. */
export const MISSING = '/bin/data';

/** True for the units (by submission index) that run {@link MISSING}. */
export const failsAt = (i: number): boolean => i % 10 === 0;

/** Runs the workload against `endpoint`; returns the final units and the pilot. */
export async function failingUnits(endpoint: string, opts: ExampleOptions = {}): Promise<ExampleResult> {
  const log = opts.log ?? console.log;
  const session = await Session.create({ endpoint, name: 'failing-units' });
  try {
    log(`session ${session.uid}`);
    const pmgr = await PilotManager.create(session);
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const finish = follow(umgr, opts);
    const units = await umgr.submitUnits(
      Array.from({ length: 20 }, (_, i) => ({
        executable: failsAt(i) ? MISSING : '/bin/date',
        name: `unit-${i}`,
      })),
    );
    await umgr.waitUnits({ timeout: 120 });
    finish(units);
    for (const u of units.filter((u) => u.state === UnitState.FAILED))
      log(`${u.uid} FAILED, exit code ${u.exitCode}: ${u.stderr?.trim()}`);
    return { units, pilots: [pilot] };
  } finally {
    await session.close({ timeout: 60 });
  }
}

/** What should have happened, as a list of deviations (empty when all is well). */
export function checkFailingUnits({ units }: ExampleResult): string[] {
  return units.flatMap((u, i) => {
    if (!failsAt(i)) return u.state === UnitState.DONE ? [] : [`${u.uid}: ${u.state}, expected Done`];
    if (u.state !== UnitState.FAILED) return [`${u.uid}: ${u.state}, expected Failed`];
    if (u.exitCode !== 127) return [`${u.uid}: exit code ${u.exitCode}, expected 127`];
    return u.stderr?.includes(MISSING) ? [] : [`${u.uid}: stderr does not name ${MISSING}: ${u.stderr}`];
  });
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const problems = checkFailingUnits(await withBackend((endpoint) => failingUnits(endpoint)));
    for (const p of problems) console.log(`unexpected: ${p}`);
    console.log(problems.length ? 'FAILED' : 'every 10th unit FAILED as it should, the others are DONE');
    return problems.length === 0;
  });
}
