/**
 * RP's `io_staging_simple.py`: one unit sorts the password file. Its directives are RP's plain strings,
 * `'/etc/passwd'` in (TRANSFER to `passwd` in the unit sandbox) and `'result.dat'` out (TRANSFER back to
 * this machine): the SDK uploads and downloads through S3. One change: RP wrote `result.dat` into the
 * working directory; here it goes into `dir` (`'result.dat > <dir>/result.dat'`), so that a test can run
 * it beside others.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { type ExampleOptions, type ExampleResult, follow, isMain, runMain, withBackend } from './harness.ts';

/** The file RP's example sorts. */
export const PASSWD = '/etc/passwd';

/** Runs the workload against `endpoint`; `result.dat` comes back into `dir`. */
export async function ioStagingSimple(
  endpoint: string,
  dir: string,
  opts: ExampleOptions = {},
): Promise<ExampleResult> {
  const log = opts.log ?? console.log;
  const session = await Session.create({ endpoint, name: 'io-staging-simple' });
  try {
    const pmgr = await PilotManager.create(session);
    pmgr.registerCallback((p, s) => log(`[Callback]: ComputePilot '${p.uid}' state: ${s}.`));
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', cores: 1, runtime: 5 });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const finish = follow(umgr, opts);
    const unit = await umgr.submitUnits({
      executable: '/usr/bin/sort',
      arguments: ['-o', 'result.dat', 'passwd'],
      inputStaging: PASSWD,
      outputStaging: `result.dat > ${path.join(dir, 'result.dat')}`,
    });
    await umgr.waitUnits({ timeout: 120 });
    finish([unit]);
    log(
      `* Task ${unit.uid} (executed @ ${unit.executionLocations.join(',')}) state: ${unit.state}, exit code: ${unit.exitCode}, started: ${unit.startTime?.toISOString()}, finished: ${unit.stopTime?.toISOString()}, output file: ${unit.description.outputStaging?.[0]?.target}`,
    );
    return { units: [unit], pilots: [pilot] };
  } finally {
    await session.close({ timeout: 60 });
  }
}

/** Deviations from what should have happened (empty when all is well). */
export function checkIoStagingSimple({ units }: ExampleResult, dir: string): string[] {
  const [u] = units;
  if (!u) return ['no unit'];
  if (u.state !== UnitState.DONE) return [`${u.uid}: ${u.state}, expected Done (${u.log.join('; ')})`];
  // sort's order depends on the locale: compare the lines as sets, and their count.
  const want = readFileSync(PASSWD, 'utf8').split('\n').filter(Boolean).sort();
  const got = readFileSync(path.join(dir, 'result.dat'), 'utf8').split('\n').filter(Boolean);
  return got.length === want.length && [...got].sort().join('\n') === want.join('\n')
    ? []
    : [`result.dat does not hold the lines of ${PASSWD}`];
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'io-staging-simple-'));
    const result = await withBackend((endpoint) => ioStagingSimple(endpoint, dir));
    const problems = checkIoStagingSimple(result, dir);
    for (const p of problems) console.log(p);
    console.log(problems.length ? 'FAILED' : `result in ${path.join(dir, 'result.dat')}`);
    return problems.length === 0;
  });
}
