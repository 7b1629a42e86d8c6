/** Everything of one session the listing commands show, read through the SDK's managers. */
import { BadParameter, DoesNotExist } from '../../core/errors.ts';
import { PilotState, UnitState } from '../../core/states.ts';
import type { ComputePilot } from '../pilot.ts';
import type { PilotManager } from '../pilot-manager.ts';
import type { Session } from '../session.ts';
import type { ComputeUnit } from '../unit.ts';
import type { UnitManager } from '../unit-manager.ts';

/** The pilot managers and their pilots of a session. */
export async function pilotsOf(session: Session): Promise<{ pmgrs: PilotManager[]; pilots: ComputePilot[] }> {
  const pmgrs = await session.getPilotManagers();
  // The SDK lists in the order of the change feed; people read lists by uid.
  const pilots = (await Promise.all(pmgrs.map((m) => m.getPilots())))
    .flat()
    .sort((a, b) => a.uid.localeCompare(b.uid));
  return { pmgrs, pilots };
}

/** The unit managers and their units of a session. */
export async function unitsOf(session: Session): Promise<{ umgrs: UnitManager[]; units: ComputeUnit[] }> {
  const umgrs = await session.getUnitManagers();
  const units = (await Promise.all(umgrs.map((m) => m.getUnits())))
    .flat()
    .sort((a, b) => a.uid.localeCompare(b.uid));
  return { umgrs, units };
}

/** The pilot `uid` of a session, with its manager. @throws DoesNotExist naming it. */
export async function findPilot(
  session: Session,
  uid: string,
): Promise<{ pmgr: PilotManager; pilot: ComputePilot }> {
  const { pilots } = await pilotsOf(session);
  const pilot = pilots.find((p) => p.uid === uid);
  if (!pilot) throw new DoesNotExist(`${uid}: no such pilot in session ${session.uid}`, { obj: uid });
  return { pmgr: pilot.pilotManager, pilot };
}

/** The unit `uid` of a session, with its manager. @throws DoesNotExist naming it. */
export async function findUnit(
  session: Session,
  uid: string,
): Promise<{ umgr: UnitManager; unit: ComputeUnit }> {
  const { units } = await unitsOf(session);
  const unit = units.find((u) => u.uid === uid);
  if (!unit) throw new DoesNotExist(`${uid}: no such unit in session ${session.uid}`, { obj: uid });
  return { umgr: unit.unitManager, unit };
}

/** What kind of object an id names, by RP's uid prefixes. */
export function kindOf(id: string): 'pilot' | 'unit' | 'session' {
  if (id.startsWith('pilot.')) return 'pilot';
  if (id.startsWith('unit.')) return 'unit';
  return 'session';
}

/**
 * A `--state` value as the wire state it names, case-insensitively, with or without RP's underscores
 * (`done`, `DONE`, `PENDING_ACTIVE`, `PendingActive`).
 * @throws BadParameter naming the flag and the value, with the states allowed.
 */
export function parseStateFilter(kind: 'pilot' | 'unit', v: string): string {
  const states: string[] = Object.values(kind === 'pilot' ? PilotState : UnitState);
  const found = states.find((s) => s.toLowerCase() === v.toLowerCase().replaceAll('_', ''));
  if (!found)
    throw new BadParameter(
      `--state: must be one of ${states.join(', ')} for ${kind}s, got ${JSON.stringify(v)}`,
    );
  return found;
}
