/**
 * Getting started (RP's getting_started_local.py): one pilot on local.localhost, 16 units — /bin/echo
 * with per-unit arguments and /bin/date — live progress, a final table, then the pilot is cancelled and
 * the session closed. `npm start` runs it; exit code 0 only when every unit is DONE.
 */
import { type ComputeUnit, PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { type ExampleOptions, follow, isMain, runMain, withBackend } from './harness.ts';

/** Runs the workload against `endpoint`; returns the finished units. */
export async function gettingStarted(endpoint: string, opts: ExampleOptions = {}): Promise<ComputeUnit[]> {
  const log = opts.log ?? console.log;
  const session = await Session.create({ endpoint, name: 'getting-started' });
  try {
    log(`session ${session.uid}`);
    const pmgr = await PilotManager.create(session);
    pmgr.registerCallback((p, s) => log(`pilot ${p.uid}: ${s}`));
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });

    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const finish = follow(umgr, opts);
    const descriptions = Array.from({ length: 16 }, (_, i) =>
      i % 4 === 3
        ? { executable: '/bin/date', name: `date-${i}` }
        : { executable: '/bin/echo', arguments: [`unit ${i} says hello`], name: `echo-${i}` },
    );
    const units = await umgr.submitUnits(descriptions);
    await umgr.waitUnits({ timeout: 300 });
    finish(units);
    await pilot.cancel();
    await pilot.wait({ timeout: 60 });
    log(`pilot ${pilot.uid}: ${pilot.state}`);
    return units;
  } finally {
    await session.close({ timeout: 60 });
  }
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const units = await withBackend((endpoint) => gettingStarted(endpoint));
    const done = units.filter((u) => u.state === UnitState.DONE).length;
    console.log(`${done} of ${units.length} units DONE`);
    return done === units.length;
  });
}
