/**
 * RP's `io_staging_pipeline.py`: two units in a row pass a file through the pilot's staging area. Unit 1
 * sorts `input_file.txt` into `intermediate_file.txt` and copies it to `staging:///`; unit 2 links it in
 * from there, writes its first line to `output_file.txt`, which is staged back.
 *
 * RP's plain-name directives (`input_file.txt`, `output_file.txt`) default to TRANSFER between the
 * client's machine and the resource, which Sortie does not build yet; on `local.localhost` those files
 * are the resource's, so they move with COPY from and to the example's working folder. The staging-area
 * directives (COPY out to `staging:///`, LINK in from it) are RP's own.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { COPY, LINK, PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { type ExampleOptions, type ExampleResult, follow, isMain, runMain, withBackend } from './harness.ts';

const INPUT_FILE = 'input_file.txt';
const INTERMEDIATE_FILE = 'intermediate_file.txt';
const OUTPUT_FILE = 'output_file.txt';
/** What the example sorts; its first line after sorting is the expected output. */
export const INPUT_LINES = ['pear', 'apple', 'quince', 'fig'];

/** Runs the pipeline against `endpoint` in `workDir` (the client's folder, on this host). */
export async function ioStagingPipeline(
  endpoint: string,
  workDir: string,
  opts: ExampleOptions = {},
): Promise<ExampleResult> {
  const log = opts.log ?? console.log;
  writeFileSync(path.join(workDir, INPUT_FILE), `${INPUT_LINES.join('\n')}\n`);
  const session = await Session.create({ endpoint, name: 'io-staging-pipeline' });
  try {
    log(`session ${session.uid}`);
    const pmgr = await PilotManager.create(session);
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 15, cores: 2 });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const finish = follow(umgr, opts);
    // Task 1: sort the input into the intermediate file, which goes to the staging area.
    const first = await umgr.submitUnits({
      executable: 'sort',
      arguments: ['-o', INTERMEDIATE_FILE, INPUT_FILE],
      inputStaging: [{ source: path.join(workDir, INPUT_FILE), target: INPUT_FILE, action: COPY }],
      outputStaging: [{ source: INTERMEDIATE_FILE, target: `staging:///${INTERMEDIATE_FILE}`, action: COPY }],
    });
    await umgr.waitUnits({ timeout: 120 });
    // Task 2: link the intermediate file in, keep its first line, stage the output back.
    const second = await umgr.submitUnits({
      executable: '/bin/bash',
      arguments: ['-l', '-c', `head -n1 ${INTERMEDIATE_FILE} > ${OUTPUT_FILE}`],
      inputStaging: [{ source: `staging:///${INTERMEDIATE_FILE}`, target: INTERMEDIATE_FILE, action: LINK }],
      outputStaging: [{ source: OUTPUT_FILE, target: path.join(workDir, OUTPUT_FILE), action: COPY }],
    });
    await umgr.waitUnits({ timeout: 120 });
    finish([first, second]);
    return { units: [first, second], pilots: [pilot] };
  } finally {
    await session.close({ timeout: 60 });
  }
}

/** What should have happened, as a list of deviations (empty when all is well). */
export function checkIoStagingPipeline({ units }: ExampleResult, workDir: string): string[] {
  const problems = units
    .filter((u) => u.state !== UnitState.DONE)
    .map((u) => `${u.uid}: ${u.state}, expected Done (${u.log.join('; ')})`);
  if (problems.length) return problems;
  const want = [...INPUT_LINES].sort()[0];
  const got = readFileSync(path.join(workDir, OUTPUT_FILE), 'utf8').trim();
  return got === want ? [] : [`${OUTPUT_FILE} holds ${JSON.stringify(got)}, expected ${want}`];
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const workDir = mkdtempSync(path.join(os.tmpdir(), 'io-staging-pipeline-'));
    const result = await withBackend((endpoint) => ioStagingPipeline(endpoint, workDir));
    const problems = checkIoStagingPipeline(result, workDir);
    for (const p of problems) console.log(p);
    console.log(problems.length ? 'FAILED' : `output in ${path.join(workDir, OUTPUT_FILE)}`);
    return problems.length === 0;
  });
}
