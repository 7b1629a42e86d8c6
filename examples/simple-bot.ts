/**
 * A bag of tasks (RP's tutorial/simple_bot.py): one pilot, 32 units `/bin/echo 'I am CU number $CU_NO'`
 * with `environment: {CU_NO: i}`. As in RP, arguments are double-quoted in the unit's launch script, so
 * `$CU_NO` expands to each unit's own number. Exit code 0 only when every unit is DONE saying its number.
 */
import { PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { type ExampleOptions, type ExampleResult, follow, isMain, runMain, withBackend } from './harness.ts';

/** Units in the bag. */
export const BOT_SIZE = 32;

/** Runs the workload against `endpoint`; returns the final units and the pilot. */
export async function simpleBot(endpoint: string, opts: ExampleOptions = {}): Promise<ExampleResult> {
  const log = opts.log ?? console.log;
  const session = await Session.create({ endpoint, name: 'simple-bot' });
  try {
    log(`session ${session.uid}`);
    const pmgr = await PilotManager.create(session);
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const finish = follow(umgr, opts);
    const units = await umgr.submitUnits(
      Array.from({ length: BOT_SIZE }, (_, i) => ({
        executable: '/bin/echo',
        arguments: ['I am CU number $CU_NO'],
        environment: { CU_NO: String(i) },
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
export function checkSimpleBot({ units }: ExampleResult): string[] {
  return units.flatMap((u, i) => {
    if (u.state !== UnitState.DONE) return [`${u.uid}: ${u.state}, expected Done`];
    const want = `I am CU number ${i}`;
    return u.stdout?.trim() === want
      ? []
      : [`${u.uid}: stdout ${JSON.stringify(u.stdout)}, expected ${want}`];
  });
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const problems = checkSimpleBot(await withBackend((endpoint) => simpleBot(endpoint)));
    for (const p of problems) console.log(`unexpected: ${p}`);
    console.log(problems.length ? 'FAILED' : `all ${BOT_SIZE} units said their own number`);
    return problems.length === 0;
  });
}
