/**
 * Pre- and post-exec (RP's 10_pre_and_post_exec.py): one pilot, 8 units whose `preExec` exports TEST
 * and whose `postExec` writes `post.txt` in the unit sandbox; the command `/bin/sh -c 'echo $RP_UNIT_ID
 * greets $TEST'` sees TEST only through the pre-exec. Each stdout must read `<uid> greets jabberwocky`,
 * and each sandbox must hold `post.txt` with `<uid> done 0` (post-exec sees the command's exit code).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { type ExampleOptions, type ExampleResult, follow, isMain, runMain, withBackend } from './harness.ts';

/** The file each unit's post-exec writes in its sandbox. */
export const POST_FILE = 'post.txt';

/** Runs the workload against `endpoint`; returns the final units and the pilot. */
export async function prePostExec(endpoint: string, opts: ExampleOptions = {}): Promise<ExampleResult> {
  const log = opts.log ?? console.log;
  const session = await Session.create({ endpoint, name: 'pre-post-exec' });
  try {
    log(`session ${session.uid}`);
    const pmgr = await PilotManager.create(session);
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const finish = follow(umgr, opts);
    const units = await umgr.submitUnits(
      Array.from({ length: 8 }, () => ({
        preExec: ['export TEST=jabberwocky'],
        executable: '/bin/sh',
        arguments: ['-c', 'echo $RP_UNIT_ID greets $TEST'],
        postExec: [`echo "$RP_UNIT_ID done $RP_RETVAL" > ${POST_FILE}`],
      })),
    );
    await umgr.waitUnits({ timeout: 120 });
    finish(units);
    return { units, pilots: [pilot] };
  } finally {
    await session.close({ timeout: 60 });
  }
}

/** The post-exec file of a unit ('' when it is missing). The sandbox is on this host for local.localhost. */
export function postFile(sandbox: string | undefined): string {
  try {
    return sandbox ? readFileSync(path.join(sandbox, POST_FILE), 'utf8') : '';
  } catch {
    return '';
  }
}

/** What should have happened, as a list of deviations (empty when all is well). */
export function checkPrePostExec({ units }: ExampleResult): string[] {
  return units.flatMap((u) => {
    if (u.state !== UnitState.DONE) return [`${u.uid}: ${u.state}, expected Done`];
    const want = `${u.uid} greets jabberwocky`;
    if (u.stdout?.trim() !== want) return [`${u.uid}: stdout ${JSON.stringify(u.stdout)}, expected ${want}`];
    const post = postFile(u.workingDirectory).trim();
    return post === `${u.uid} done 0` ? [] : [`${u.uid}: ${POST_FILE} holds ${JSON.stringify(post)}`];
  });
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const problems = checkPrePostExec(await withBackend((endpoint) => prePostExec(endpoint)));
    for (const p of problems) console.log(`unexpected: ${p}`);
    console.log(problems.length ? 'FAILED' : 'pre-exec set the environment and post-exec wrote its file');
    return problems.length === 0;
  });
}
