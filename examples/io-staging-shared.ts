/**
 * RP's `io_staging_shared.py`: a file shared by every unit is put once into the pilot's staging area with
 * `pilot.stageIn` (TRANSFER from this machine), and each unit LINKs it into its sandbox, gets its own input
 * by TRANSFER, concatenates both and sends its output back by TRANSFER. Two changes: RP used the
 * backfilling scheduler, which Sortie refuses (not built), so units are bound with direct submission; and
 * the files live in `dir` instead of the working directory, so that a test can run it beside others.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LINK, PilotManager, Session, TRANSFER, UnitManager, UnitState } from '../client/index.ts';
import { type ExampleOptions, type ExampleResult, follow, isMain, runMain, withBackend } from './harness.ts';

const SHARED_INPUT_FILE = 'shared_input_file.txt';
const MY_STAGING_AREA = 'staging:///';
/** Who sits in the cockpit: one unit each. */
export const OCCUPANTS = ['Alice', 'Bob', 'Carol', 'Eve'];

/** Runs the workload against `endpoint` with its files in `dir`. */
export async function ioStagingShared(
  endpoint: string,
  dir: string,
  opts: ExampleOptions = {},
): Promise<ExampleResult> {
  const log = opts.log ?? console.log;
  // The shared input, and one input per unit
  writeFileSync(path.join(dir, SHARED_INPUT_FILE), 'Hello world, ');
  for (const [idx, occ] of OCCUPANTS.entries())
    writeFileSync(path.join(dir, `input_file-${idx + 1}.txt`), `${occ}\n`);
  const session = await Session.create({ endpoint, name: 'io-staging-shared' });
  try {
    const pmgr = await PilotManager.create(session);
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 5, cores: 2 });
    const stagedFile = `${MY_STAGING_AREA}${SHARED_INPUT_FILE}`;
    log(stagedFile);
    // Synchronously stage the shared file into the pilot's staging area
    await pilot.stageIn({
      source: `file://${path.join(dir, SHARED_INPUT_FILE)}`,
      target: stagedFile,
      action: TRANSFER,
    });
    const sdShared = { source: stagedFile, target: SHARED_INPUT_FILE, action: LINK };
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const finish = follow(umgr, opts);
    const units = await umgr.submitUnits(
      OCCUPANTS.map((_, i) => {
        const input = `input_file-${i + 1}.txt`;
        const output = `output_file-${i + 1}.txt`;
        return {
          executable: '/bin/bash',
          arguments: ['-c', `cat ${SHARED_INPUT_FILE} ${input} > ${output}`],
          cores: 1,
          inputStaging: [sdShared, `${path.join(dir, input)} > ${input}`],
          outputStaging: `${output} > ${path.join(dir, output)}`,
        };
      }),
    );
    await umgr.waitUnits({ timeout: 120 });
    finish(units);
    for (const u of await umgr.getUnits()) log(` STDOUT: ${u.stdout ?? ''}\n STDERR: ${u.stderr ?? ''}`);
    return { units, pilots: [pilot] };
  } finally {
    await session.close({ timeout: 60 });
  }
}

/** Deviations from what should have happened (empty when all is well). */
export function checkIoStagingShared({ units }: ExampleResult, dir: string): string[] {
  const problems = units
    .filter((u) => u.state !== UnitState.DONE)
    .map((u) => `${u.uid}: ${u.state} ${u.log.join('; ')}`);
  OCCUPANTS.forEach((occ, i) => {
    const file = path.join(dir, `output_file-${i + 1}.txt`);
    let got = '';
    try {
      got = readFileSync(file, 'utf8');
    } catch (err) {
      got = String(err);
    }
    if (got !== `Hello world, ${occ}\n`) problems.push(`${file}: ${JSON.stringify(got)}`);
  });
  return problems;
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'io-staging-shared-'));
    const result = await withBackend((endpoint) => ioStagingShared(endpoint, dir));
    const problems = checkIoStagingShared(result, dir);
    for (const p of problems) console.log(p);
    console.log(problems.length ? 'FAILED' : `outputs in ${dir}`);
    return problems.length === 0;
  });
}
