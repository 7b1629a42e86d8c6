/**
 * RP's `io_staging_dict.py` (staging directives as objects): one unit sorts a copy of `/etc/passwd`
 * (`sort -o result.dat input.dat`) and its `result.dat` is staged back to a file outside the sandbox.
 *
 * RP's directives name no action, so they are TRANSFERs between this machine and the resource: the SDK
 * uploads `/etc/passwd` through S3 before submit, the agent downloads it into the unit sandbox, uploads
 * `result.dat`, and the SDK downloads it when the unit is DONE. The result must equal `sort /etc/passwd`,
 * and the unit's history must show each staging state once, in order.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { type ExampleOptions, type ExampleResult, follow, isMain, runMain, withBackend } from './harness.ts';

/** The input RP's example sorts. */
export const INPUT = '/etc/passwd';

/** Runs the workload against `endpoint`; `resultFile` is where `result.dat` is staged out to. */
export async function ioStagingDict(
  endpoint: string,
  resultFile: string,
  opts: ExampleOptions = {},
): Promise<ExampleResult> {
  const log = opts.log ?? console.log;
  const session = await Session.create({ endpoint, name: 'io-staging-dict' });
  try {
    log(`session ${session.uid}`);
    const pmgr = await PilotManager.create(session);
    pmgr.registerCallback((p, s) => log(`[Callback]: ComputePilot '${p.uid}' state: ${s}.`));
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 5, cores: 2 });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const finish = follow(umgr, opts);
    const unit = await umgr.submitUnits({
      executable: 'sort',
      arguments: ['-o', 'result.dat', 'input.dat'],
      inputStaging: [{ source: INPUT, target: 'input.dat' }],
      outputStaging: [{ source: 'result.dat', target: resultFile }],
    });
    await umgr.waitUnits({ timeout: 120 });
    finish([unit]);
    log(
      `* Task ${unit.uid} (executed @ ${unit.executionLocations.join(',')}) state: ${unit.state}, exit code: ${unit.exitCode}, output file: ${resultFile}`,
    );
    return { units: [unit], pilots: [pilot] };
  } finally {
    await session.close({ timeout: 60 });
  }
}

/** What should have happened, as a list of deviations (empty when all is well). */
export function checkIoStagingDict({ units }: ExampleResult, resultFile: string): string[] {
  const [u] = units;
  if (!u) return ['no unit'];
  if (u.state !== UnitState.DONE) return [`${u.uid}: ${u.state}, expected Done (${u.log.join('; ')})`];
  const lines = readFileSync(INPUT, 'utf8').split('\n').filter(Boolean);
  // sort's order depends on the locale: compare as sets of lines and check the count.
  const got = readFileSync(resultFile, 'utf8').split('\n').filter(Boolean);
  const problems: string[] = [];
  if (got.length !== lines.length || [...lines].sort().join('\n') !== [...got].sort().join('\n'))
    problems.push(`${resultFile} does not hold the lines of ${INPUT}`);
  const staging = u.stateHistory.map((e) => e.state).filter((s) => /Staging/.test(s));
  const want = ['PendingInputStaging', 'StagingInput', 'PendingOutputStaging', 'StagingOutput'];
  if (staging.join() !== want.join()) problems.push(`${u.uid}: staging states ${staging.join(' > ')}`);
  return problems;
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const resultFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'io-staging-dict-')), 'result.dat');
    const result = await withBackend((endpoint) => ioStagingDict(endpoint, resultFile));
    const problems = checkIoStagingDict(result, resultFile);
    for (const p of problems) console.log(p);
    console.log(problems.length ? 'FAILED' : `result in ${resultFile}`);
    return problems.length === 0;
  });
}
