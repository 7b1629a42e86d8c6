/** `sortie show ID`: a session, pilot or unit in full (description, states with times, log, sandbox). */
import { stringify } from 'yaml';
import { EXIT } from './exit-codes.ts';
import { connect, type SessionFlags } from './session-file.ts';
import { findPilot, findUnit, kindOf, pilotsOf, unitsOf } from './session-view.ts';
import { printJson } from './table.ts';
import { Tally } from './tally.ts';

/** Options of `sortie show`. */
export interface ShowOptions extends SessionFlags {
  json?: boolean;
}

/** Prints the object `id` names (pilot.*, unit.*, or a session uid) as YAML, or JSON with --json. */
export async function show(id: string, opts: ShowOptions): Promise<number> {
  const kind = kindOf(id);
  const session = await connect(kind === 'session' ? { ...opts, session: id } : opts);
  let doc: unknown;
  if (kind === 'pilot') doc = (await findPilot(session, id)).pilot.asDict();
  else if (kind === 'unit') doc = (await findUnit(session, id)).unit.asDict();
  else {
    const { pilots } = await pilotsOf(session);
    const { umgrs, units } = await unitsOf(session);
    const tally = new Tally();
    for (const u of units) tally.set(u.uid, u.state);
    doc = {
      ...session.asDict(),
      pilots: pilots.map((p) => ({ uid: p.uid, resource: p.resource, state: p.state })),
      unitManagers: umgrs.map((m) => ({ uid: m.uid, scheduler: m.scheduler })),
      units: Object.fromEntries(tally.counts()),
    };
  }
  if (opts.json) printJson(doc);
  else process.stdout.write(stringify(doc, { lineWidth: 0 }));
  return EXIT.OK;
}
