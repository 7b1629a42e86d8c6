/**
 * `sortie cancel ID…`: units (unit.*), pilots (pilot.*) or a whole session. A session is cancelled as
 * RP's `session.close()` does it, after its units: they end CANCELED rather than swept by their pilot's end.
 */
import { EXIT } from './exit-codes.ts';
import { connect, type SessionFlags } from './session-file.ts';
import { findPilot, findUnit, kindOf, unitsOf } from './session-view.ts';

/** Cancels each id; an unknown id stops before anything later in the list (DoesNotExist, exit 2). */
export async function cancel(ids: string[], opts: SessionFlags): Promise<number> {
  for (const id of ids) {
    const kind = kindOf(id);
    const session = await connect(kind === 'session' ? { ...opts, session: id } : opts);
    if (kind === 'unit') {
      const { umgr } = await findUnit(session, id);
      await umgr.cancelUnits(id);
    } else if (kind === 'pilot') {
      const { pmgr } = await findPilot(session, id);
      await pmgr.cancelPilots(id);
    } else {
      if (!session.closed) for (const umgr of (await unitsOf(session)).umgrs) await umgr.cancelUnits();
      await session.close();
    }
    process.stdout.write(`canceled ${id}\n`);
  }
  return EXIT.OK;
}
