/**
 * Multiple pilots (RP's 03_multiple_pilots.py): two pilots on local.localhost, one round_robin unit
 * manager over both, 8 units of `/bin/sh -c 'echo $RP_PILOT_ID'`. Round robin binds the units
 * alternately to the two pilots at submit time; each unit's stdout names the pilot that ran it. Exit
 * code 0 only when every unit is DONE on the pilot it was bound to and both pilots ran half the units.
 */
import { PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { type ExampleOptions, type ExampleResult, follow, isMain, runMain, withBackend } from './harness.ts';

/** Runs the workload against `endpoint`; returns the final units and both pilots. */
export async function multiplePilots(endpoint: string, opts: ExampleOptions = {}): Promise<ExampleResult> {
  const log = opts.log ?? console.log;
  const session = await Session.create({ endpoint, name: 'multiple-pilots' });
  try {
    log(`session ${session.uid}`);
    const pmgr = await PilotManager.create(session);
    const pilots = await pmgr.submitPilots([
      { resource: 'local.localhost', runtime: 10, cores: 1 },
      { resource: 'local.localhost', runtime: 10, cores: 1 },
    ]);
    const umgr = await UnitManager.create(session, 'round_robin');
    await umgr.addPilots(pilots);
    const finish = follow(umgr, opts);
    const units = await umgr.submitUnits(
      Array.from({ length: 8 }, () => ({ executable: '/bin/sh', arguments: ['-c', 'echo $RP_PILOT_ID'] })),
    );
    await umgr.waitUnits({ timeout: 120 });
    finish(units);
    for (const p of pilots)
      log(`${p.uid}: ran ${units.filter((u) => u.stdout?.trim() === p.uid).length} units`);
    return { units, pilots };
  } finally {
    await session.close({ timeout: 60 });
  }
}

/** What should have happened, as a list of deviations (empty when all is well). */
export function checkMultiplePilots({ units, pilots }: ExampleResult): string[] {
  const problems = units.flatMap((u) => {
    if (u.state !== UnitState.DONE) return [`${u.uid}: ${u.state}, expected Done`];
    return u.stdout?.trim() === u.pilotId
      ? []
      : [`${u.uid}: stdout ${JSON.stringify(u.stdout)}, but bound to ${u.pilotId}`];
  });
  for (const p of pilots) {
    const n = units.filter((u) => u.pilotId === p.uid).length;
    if (n !== units.length / pilots.length) problems.push(`${p.uid} ran ${n} of ${units.length} units`);
  }
  return problems;
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const problems = checkMultiplePilots(await withBackend((endpoint) => multiplePilots(endpoint)));
    for (const p of problems) console.log(`unexpected: ${p}`);
    console.log(problems.length ? 'FAILED' : 'units spread evenly over both pilots');
    return problems.length === 0;
  });
}
