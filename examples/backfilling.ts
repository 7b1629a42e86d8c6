/**
 * Backfilling (RP 0.22's examples/backfilling.py): three pilots under one backfilling unit manager
 * (`SCHED_BACKFILLING`, late binding). The script waits for the first pilot only, then submits the whole
 * workload: units wait UNSCHEDULED in the manager's queue and every pilot that is ACTIVE pulls them as
 * its cores free up, so the pilots that come up later backfill. As in RP, callbacks on both managers
 * report every state and a FAILED pilot or unit fails the run.
 *
 * Scaled to this machine: RP's pilots are local.localhost with 4 cores and two xsede.stampede pilots of 32
 * and 128 cores; here they are local.localhost pilots of 2, 1 and 1 cores. RP's 512 units of `SLEEP 300`
 * are 32 units of `/bin/sleep 1`. Exit code 0 only when every unit is DONE and every pilot ran units.
 */
import {
  ACTIVE,
  type ComputePilot,
  FAILED,
  PilotManager,
  SCHED_BACKFILLING,
  Session,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { type ExampleOptions, type ExampleResult, follow, isMain, runMain, withBackend } from './harness.ts';

/** Units in the workload. */
export const BACKFILLING_UNITS = 32;

/** Runs the workload against `endpoint`; returns the final units and the three pilots. */
export async function backfilling(endpoint: string, opts: ExampleOptions = {}): Promise<ExampleResult> {
  const log = opts.log ?? console.log;
  const failures: string[] = [];
  const session = await Session.create({ endpoint, name: 'backfilling' });
  try {
    log(`session ${session.uid}`);
    const pmgr = await PilotManager.create(session);
    // RP: pilot_state_cb prints every state and exits on FAILED; here the failure is kept and thrown.
    pmgr.registerCallback((pilot: ComputePilot, state) => {
      log(`[Callback]: ComputePilot '${pilot.uid}' state: ${state}.`);
      if (state === FAILED) failures.push(`pilot ${pilot.uid} FAILED`);
    });
    const pilot1 = await pmgr.submitPilots({
      resource: 'local.localhost',
      runtime: 12,
      cores: 2,
      cleanup: true,
    });
    const pilot2 = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 12, cores: 1 });
    const pilot3 = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 12, cores: 1 });

    const umgr = await UnitManager.create(session, SCHED_BACKFILLING);
    umgr.registerCallback((unit, state) => {
      log(`[Callback]: ComputeUnit  '${unit.uid}' state: ${state}.`);
      if (state === FAILED) failures.push(`unit ${unit.uid} FAILED`);
    });
    const finish = follow(umgr, opts);
    await umgr.addPilots([pilot1, pilot2, pilot3]);

    // Wait until the first pilot is active; the others join whenever they are.
    await pilot1.wait({ state: ACTIVE, timeout: 120 });

    const units = await umgr.submitUnits(
      Array.from({ length: BACKFILLING_UNITS }, () => ({ executable: '/bin/sleep', arguments: ['1'] })),
    );
    await umgr.waitUnits({ timeout: 300 });
    await pmgr.cancelPilots();
    finish(units);
    for (const u of units)
      log(
        `* Unit ${u.uid} state: ${u.state}, exit code: ${u.exitCode}, started: ${u.startTime}, finished: ${u.stopTime}`,
      );
    if (failures.length) throw new Error(`backfilling: ${failures.join('; ')}`);
    return { units, pilots: [pilot1, pilot2, pilot3] };
  } finally {
    await session.close({ timeout: 60 });
  }
}

/** What should have happened, as a list of deviations (empty when all is well). */
export function checkBackfilling({ units, pilots }: ExampleResult): string[] {
  const problems = units.flatMap((u) =>
    u.state === UnitState.DONE ? [] : [`${u.uid}: ${u.state}, expected Done`],
  );
  for (const p of pilots)
    if (!units.some((u) => u.pilotId === p.uid)) problems.push(`${p.uid} ran no unit: it did not backfill`);
  return problems;
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const problems = checkBackfilling(await withBackend((endpoint) => backfilling(endpoint)));
    for (const p of problems) console.log(`unexpected: ${p}`);
    console.log(problems.length ? 'FAILED' : 'every pilot backfilled and every unit is DONE');
    return problems.length === 0;
  });
}
