/**
 * Unit environment (RP's 08_task_environment.py): one pilot, 8 units with `environment: {TEST:
 * 'jabberwocky'}` running `/bin/sh -c 'echo $RP_UNIT_ID greets $TEST'`. Each unit's stdout must read
 * `<its uid> greets jabberwocky`: the agent sets RP_UNIT_ID, the description sets TEST. Exit code 0 only
 * when every unit is DONE with that stdout.
 */
import { PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { type ExampleOptions, type ExampleResult, follow, isMain, runMain, withBackend } from './harness.ts';

/** Runs the workload against `endpoint`; returns the final units and the pilot. */
export async function unitEnvironment(endpoint: string, opts: ExampleOptions = {}): Promise<ExampleResult> {
  const log = opts.log ?? console.log;
  const session = await Session.create({ endpoint, name: 'unit-environment' });
  try {
    log(`session ${session.uid}`);
    const pmgr = await PilotManager.create(session);
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const finish = follow(umgr, opts);
    const units = await umgr.submitUnits(
      Array.from({ length: 8 }, () => ({
        executable: '/bin/sh',
        arguments: ['-c', 'echo $RP_UNIT_ID greets $TEST'],
        environment: { TEST: 'jabberwocky' },
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
export function checkUnitEnvironment({ units }: ExampleResult): string[] {
  return units.flatMap((u) => {
    if (u.state !== UnitState.DONE) return [`${u.uid}: ${u.state}, expected Done`];
    const want = `${u.uid} greets jabberwocky`;
    return u.stdout?.trim() === want
      ? []
      : [`${u.uid}: stdout ${JSON.stringify(u.stdout)}, expected ${want}`];
  });
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const problems = checkUnitEnvironment(await withBackend((endpoint) => unitEnvironment(endpoint)));
    for (const p of problems) console.log(`unexpected: ${p}`);
    console.log(problems.length ? 'FAILED' : 'every unit greeted with its environment');
    return problems.length === 0;
  });
}
