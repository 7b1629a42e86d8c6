/** `sortie ls sessions|pilots|units [--state S] [--json]`. */
import { BadParameter, PilotException } from '../../core/errors.ts';
import { Transport } from '../http.ts';
import { EXIT } from './exit-codes.ts';
import { connect, type SessionFlags, savedSessions } from './session-file.ts';
import { parseStateFilter, pilotsOf, unitsOf } from './session-view.ts';
import { printJson, table } from './table.ts';

/** Options of `sortie ls`. */
export interface LsOptions extends SessionFlags {
  state?: string;
  json?: boolean;
}

const WHAT = ['sessions', 'pilots', 'units'];

/**
 * Sessions: those saved in this directory (the API lists no sessions: a token opens one session, and
 * there is no account above it), each with its state read from the API. Pilots and units: of one session.
 */
export async function ls(what: string, opts: LsOptions): Promise<number> {
  if (!WHAT.includes(what))
    throw new BadParameter(`ls: must list one of ${WHAT.join(', ')}, got ${JSON.stringify(what)}`);
  if (what === 'sessions') {
    if (opts.state) throw new BadParameter('--state: filters pilots and units, not sessions');
    const rows = [];
    for (const s of savedSessions()) {
      const t = new Transport({ endpoint: opts.api ?? s.apiUrl, retryBudgetMs: 5_000 }, s.token);
      let state: string;
      try {
        const info = await t.request<{ closed?: string }>('GET', `/sessions/${encodeURIComponent(s.uid)}`);
        state = info.closed ? 'closed' : 'open';
      } catch (err) {
        // A session of an in-memory backend that has since stopped: list it, say why it cannot be read.
        state = `unknown (${err instanceof PilotException ? err.code : 'error'})`;
      }
      rows.push({ uid: s.uid, name: s.name, created: s.created, state, api: s.apiUrl });
    }
    if (opts.json) printJson(rows);
    else
      process.stdout.write(
        `${table(
          ['session', 'name', 'created', 'state', 'api'],
          rows.map((r) => [r.uid, r.name, r.created, r.state, r.api]),
        )}\n`,
      );
    return EXIT.OK;
  }
  const session = await connect(opts);
  if (what === 'pilots') {
    const state = opts.state === undefined ? undefined : parseStateFilter('pilot', opts.state);
    const pilots = (await pilotsOf(session)).pilots.filter((p) => state === undefined || p.state === state);
    if (opts.json) printJson(pilots.map((p) => p.asDict()));
    else
      process.stdout.write(
        `${table(
          ['pilot', 'pmgr', 'resource', 'state', 'cores', 'submitted'],
          pilots.map((p) => [
            p.uid,
            p.pilotManager.uid,
            p.resource,
            p.state,
            p.resourceDetail?.cores ?? p.description.cores,
            p.submissionTime?.toISOString(),
          ]),
        )}\n`,
      );
    return EXIT.OK;
  }
  const state = opts.state === undefined ? undefined : parseStateFilter('unit', opts.state);
  const units = (await unitsOf(session)).units.filter((u) => state === undefined || u.state === state);
  if (opts.json) printJson(units.map((u) => u.asDict()));
  else
    process.stdout.write(
      `${table(
        ['unit', 'umgr', 'state', 'pilot', 'exit code', 'executable'],
        units.map((u) => [
          u.uid,
          u.unitManager.uid,
          u.state,
          u.pilotId,
          u.exitCode,
          u.description.executable,
        ]),
      )}\n`,
    );
  return EXIT.OK;
}
