/**
 * `sortie logs UNIT|PILOT [--follow]`: a unit's stdout, stderr and log; a pilot's log. `--follow` prints
 * states and log lines as they come and ends when the unit or pilot ends (with the unit's output).
 */
import { BadParameter } from '../../core/errors.ts';
import { isFinal, pilotModel, unitModel } from '../../core/states.ts';
import type { ComputePilot } from '../pilot.ts';
import type { ComputeUnit } from '../unit.ts';
import { EXIT } from './exit-codes.ts';
import { connect, type SessionFlags } from './session-file.ts';
import { findPilot, findUnit, kindOf } from './session-view.ts';

/** Options of `sortie logs`. */
export interface LogsOptions extends SessionFlags {
  follow?: boolean;
}

/** How often `--follow` reads the record again (the SDK's managers follow a feed; one record is enough here). */
const FOLLOW_MS = 1_000;

const write = (s: string) => process.stdout.write(s);

function unitOutput(u: ComputeUnit): void {
  write(`--- stdout ---\n${u.stdout ?? ''}${u.stdout && !u.stdout.endsWith('\n') ? '\n' : ''}`);
  write(`--- stderr ---\n${u.stderr ?? ''}${u.stderr && !u.stderr.endsWith('\n') ? '\n' : ''}`);
}

/** Prints what is new since the counts given (states, log lines); returns the new counts. */
function printNew(
  obj: ComputeUnit | ComputePilot,
  seen: { states: number; log: number },
): { states: number; log: number } {
  for (const h of obj.stateHistory.slice(seen.states)) write(`${h.time} ${obj.uid} ${h.state}\n`);
  for (const line of obj.log.slice(seen.log)) write(`${obj.uid}: ${line}\n`);
  return { states: obj.stateHistory.length, log: obj.log.length };
}

/** Prints the logs of the unit or pilot `id`. */
export async function logs(id: string, opts: LogsOptions): Promise<number> {
  const session = await connect(opts);
  const kind = kindOf(id);
  const obj =
    kind === 'unit'
      ? (await findUnit(session, id)).unit
      : kind === 'pilot'
        ? (await findPilot(session, id)).pilot
        : undefined;
  if (!obj) {
    throw new BadParameter(
      `logs: ID must be a unit (unit.*) or a pilot (pilot.*), got ${JSON.stringify(id)}`,
    );
  }
  const ended = () =>
    kind === 'unit'
      ? isFinal(unitModel, (obj as ComputeUnit).state)
      : isFinal(pilotModel, (obj as ComputePilot).state);
  if (!opts.follow) {
    if (kind === 'unit') unitOutput(obj as ComputeUnit);
    write('--- log ---\n');
    for (const line of obj.log) write(`${line}\n`);
    return EXIT.OK;
  }
  let seen = printNew(obj, { states: 0, log: 0 });
  while (!ended()) {
    await new Promise((r) => setTimeout(r, FOLLOW_MS));
    await obj.refresh();
    seen = printNew(obj, seen);
  }
  if (kind === 'unit') unitOutput(obj as ComputeUnit);
  return EXIT.OK;
}
