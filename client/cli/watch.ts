/**
 * `sortie watch`: live per-state counts of a session's units until they all end, then the summary; exits
 * as `run` does (0 only when every unit ended DONE).
 */
import { UnitState } from '../../core/states.ts';
import { UNIT_FINAL } from '../unit.ts';
import { EXIT } from './exit-codes.ts';
import { progressView } from './progress.ts';
import { connect, type SessionFlags } from './session-file.ts';
import { pilotsOf, unitsOf } from './session-view.ts';
import { summary } from './summary.ts';
import { Tally } from './tally.ts';

/** Options of `sortie watch`. */
export interface WatchOptions extends SessionFlags {
  timeout?: number;
}

/** Follows the session's units; resolves with the exit code. */
export async function watch(opts: WatchOptions): Promise<number> {
  const session = await connect(opts);
  const { umgrs, units } = await unitsOf(session);
  const { pilots } = await pilotsOf(session);
  process.stdout.write(`session ${session.uid}: ${units.length} unit(s), ${pilots.length} pilot(s)\n`);
  if (!units.length) return EXIT.OK;
  const tally = new Tally();
  for (const u of units) tally.set(u.uid, u.state);
  const view = progressView(tally, units.length);
  for (const m of umgrs)
    m.registerCallback((u, state) => {
      tally.set(u.uid, state);
      view.update();
    });
  const deadline = opts.timeout === undefined ? undefined : Date.now() + opts.timeout * 1000;
  const states: UnitState[] = [];
  for (const m of umgrs) {
    const left = deadline === undefined ? undefined : Math.max(0.001, (deadline - Date.now()) / 1000);
    states.push(...(await m.waitUnits(left === undefined ? {} : { timeout: left })));
  }
  for (const u of units) tally.set(u.uid, u.state);
  view.stop();
  process.stdout.write(`${summary(tally, units, pilots)}\n`);
  if (states.every((s) => s === UnitState.DONE)) return EXIT.OK;
  return states.some((s) => !UNIT_FINAL.includes(s)) ? EXIT.TIMEOUT : EXIT.UNITS_NOT_DONE;
}
