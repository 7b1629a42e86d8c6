/** The tables that end `sortie run` and `sortie watch`: units per state, pilots, and the units that did not end DONE. */
import { UnitState } from '../../core/states.ts';
import type { ComputePilot } from '../pilot.ts';
import type { ComputeUnit } from '../unit.ts';
import { table } from './table.ts';
import type { Tally } from './tally.ts';

/** How many failed or canceled units the summary lists one by one. */
const LISTED = 10;

/** Why a unit did not end DONE, in one line: its last log line, else its stderr's first line. */
export function reasonOf(u: ComputeUnit): string {
  const why = u.log.at(-1) ?? u.stderr?.split('\n')[0] ?? '';
  return why.length > 100 ? `${why.slice(0, 97)}...` : why;
}

/** The summary as text: states, pilots, and up to {@link LISTED} units that did not end DONE. */
export function summary(tally: Tally, units: ComputeUnit[], pilots: ComputePilot[]): string {
  const total = tally.size;
  const parts = [
    table(
      ['state', 'units', '%'],
      tally.counts().map(([s, n]) => [s, n, ((100 * n) / total).toFixed(1)]),
    ),
  ];
  if (pilots.length)
    parts.push(
      table(
        ['pilot', 'resource', 'state', 'cores'],
        pilots.map((p) => [p.uid, p.resource, p.state, p.resourceDetail?.cores ?? p.description.cores]),
      ),
    );
  const bad = units.filter((u) => u.state !== UnitState.DONE);
  if (bad.length) {
    parts.push(
      table(
        ['unit', 'state', 'exit code', 'reason'],
        bad.slice(0, LISTED).map((u) => [u.uid, u.state, u.exitCode, reasonOf(u)]),
      ),
    );
    if (bad.length > LISTED) parts.push(`… and ${bad.length - LISTED} more (sortie ls units --state Failed)`);
  }
  return parts.join('\n');
}
