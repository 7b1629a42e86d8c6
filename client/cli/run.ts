/**
 * `sortie run WORKLOAD`: submits a workload file's pilots and units into a new session (or `--session`),
 * shows live progress, prints a summary, and exits 0 only when every unit ended DONE (EXIT).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ComputeUnitDescriptionInput } from '../../core/descriptions.ts';
import { BadParameter } from '../../core/errors.ts';
import { isFinal, PilotState, pilotModel, UnitState } from '../../core/states.ts';
import type { ComputePilot } from '../pilot.ts';
import { PilotManager } from '../pilot-manager.ts';
import { Session } from '../session.ts';
import { UNIT_FINAL } from '../unit.ts';
import { UnitManager } from '../unit-manager.ts';
import { EXIT } from './exit-codes.ts';
import { progressView } from './progress.ts';
import { apiUrl, connect, type SessionFlags, saveSession } from './session-file.ts';
import { summary } from './summary.ts';
import { Tally } from './tally.ts';
import { parseWorkload } from './workload.ts';

/** Options of `sortie run`. */
export interface RunOptions extends SessionFlags {
  /** Seconds to wait for the units; undefined = until they all end. */
  timeout?: number;
  /** Leave the session open and its pilots running (default: close it, which cancels its pilots). */
  keep?: boolean;
}

/** Live pilots of a session, for a workload without pilots run into an existing session. */
async function livePilots(session: Session): Promise<ComputePilot[]> {
  const out: ComputePilot[] = [];
  for (const pmgr of await session.getPilotManagers())
    for (const p of await pmgr.getPilots()) if (!isFinal(pilotModel, p.state)) out.push(p);
  return out;
}

/** Runs the workload file; resolves with the exit code. */
export async function run(file: string, opts: RunOptions): Promise<number> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BadParameter(`WORKLOAD: cannot read ${file}: ${(err as Error).message}`);
  }
  const wl = parseWorkload(text, path.basename(file));
  const out = (line: string) => process.stdout.write(`${line}\n`);

  let session: Session;
  if (opts.session) {
    session = await connect(opts);
    out(`session ${session.uid} (reconnected)`);
  } else {
    const endpoint = apiUrl(opts);
    session = await Session.create({ endpoint, name: wl.name ?? path.basename(file) });
    const saved = saveSession({
      uid: session.uid,
      token: session.token,
      apiUrl: endpoint,
      ...(session.name ? { name: session.name } : {}),
      created: session.created.toISOString(),
    });
    out(`session ${session.uid} (token saved in ${saved})`);
  }

  const pmgr = await PilotManager.create(session);
  let pilots: ComputePilot[];
  if (wl.pilots.length) {
    pilots = await pmgr.submitPilots(wl.pilots);
  } else {
    pilots = await livePilots(session);
    if (!pilots.length)
      throw new BadParameter(
        `${path.basename(file)}: pilots: the workload has none and session ${session.uid} has no live pilot`,
      );
  }
  const umgr = await UnitManager.create(session, wl.scheduler);
  await umgr.addPilots(pilots);

  const tally = new Tally();
  const view = progressView(tally, wl.units.length);
  pmgr.registerCallback((p, state) => {
    const why = state === PilotState.FAILED ? `: ${p.log.at(-1) ?? ''}` : '';
    view.log(`pilot ${p.uid} ${state}${why}`);
  });
  umgr.registerCallback((u, state) => {
    tally.set(u.uid, state);
    view.update();
  });
  process.once('SIGINT', () => {
    view.stop();
    process.stderr.write(
      `\ninterrupted: session ${session.uid} keeps running; follow it with \`sortie watch --session ${session.uid}\`, stop it with \`sortie cancel ${session.uid}\`\n`,
    );
    process.exit(EXIT.INTERRUPTED);
  });
  out(
    `${pilots.length} pilot(s) ${pilots.map((p) => p.uid).join(', ')}; submitting ${wl.units.length} unit(s)`,
  );
  // Parsed descriptions parse again to themselves: the SDK validates them once more, as it does all input.
  const units = await umgr.submitUnits(wl.units as ComputeUnitDescriptionInput[]);
  // Units whose first callback has not come yet count as submitted.
  for (const u of units) if (!tally.has(u.uid)) tally.set(u.uid, u.state);
  const states = await umgr.waitUnits(opts.timeout === undefined ? {} : { timeout: opts.timeout });
  // Every callback up to the final states has run: the tally matches the states waited for.
  for (const [i, u] of units.entries()) tally.set(u.uid, states[i] ?? u.state);
  view.stop();

  // Closing first (it cancels the pilots and waits for them) lets the summary show how the pilots ended.
  if (!opts.keep) await session.close();
  out(summary(tally, units, pilots));
  if (opts.keep) out(`session ${session.uid} left open (--keep): its pilots keep running`);
  const timedOut = states.some((s) => !UNIT_FINAL.includes(s));
  const allDone = states.every((s) => s === UnitState.DONE);
  return allDone ? EXIT.OK : timedOut ? EXIT.TIMEOUT : EXIT.UNITS_NOT_DONE;
}
