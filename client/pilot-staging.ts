/**
 * `pilot.stageIn` (RP 0.22) and `pilot.stageOut` (RP 1.x): files into and out of a pilot's staging area
 * (`staging:///`). RP copied them there itself over SAGA; here the pilot's own agent does it, as a unit
 * named `pilot.stageIn`/`pilot.stageOut` bound to that pilot (on a unit manager of its own), whose input
 * or output directives are the user's. So every action and rule of unit staging holds: TRANSFER from or
 * to this machine through S3, COPY/LINK/MOVE on the resource, CREATE_PARENTS, the temporary name and
 * rename, and a failure naming the file and the cause.
 */

import { BadParameter, IncorrectState, NoSuccess } from '../core/errors.ts';
import {
  expandLists,
  parseShorthand,
  STAGING_SCHEME,
  type StagingDirective,
  type StagingDirectiveInput,
  stagingDirectiveSchema,
} from '../core/staging.ts';
import { isFinal, PilotState, pilotModel, UnitState } from '../core/states.ts';
import type { ComputePilot } from './pilot.ts';
import { UnitManager } from './unit-manager.ts';

/** Seconds `stageIn`/`stageOut` wait for the pilot's agent and the staging (a large TRANSFER takes long). */
const STAGE_TIMEOUT_S = 3600;

/** The pilot's staging area as a directive path: `staging:///x`; a path already on the resource stays. */
function inArea(p: string): string {
  if (p.startsWith(STAGING_SCHEME) || p.startsWith('/') || p.startsWith('file://')) return p;
  return `${STAGING_SCHEME}${p}`;
}

/**
 * Directives as the user wrote them (objects, lists, shorthand), normalised; relative paths on the
 * resource side are under the staging area (RP's default target for a pilot's stage_in).
 */
export function pilotDirectives(raw: unknown, direction: 'in' | 'out', where: string): StagingDirective[] {
  const list = Array.isArray(raw) ? raw : [raw];
  if (list.length === 0) throw new BadParameter(`${where}: no directives given`);
  const out: StagingDirective[] = [];
  list.forEach((item, i) => {
    const form = typeof item === 'string' ? parseShorthand(item) : item;
    if (form && typeof form === 'object' && 'error' in form)
      throw new BadParameter(
        `${where}[${i}]: ${(form as { error: string }).error}, got ${JSON.stringify(item)}`,
      );
    const expanded = expandLists(form);
    if (!Array.isArray(expanded)) throw new BadParameter(`${where}[${i}]: ${expanded.error}`);
    for (const one of expanded) {
      const parsed = stagingDirectiveSchema.safeParse(one);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new BadParameter(
          `${where}[${i}].${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
        );
      }
      const d = parsed.data;
      out.push(direction === 'in' ? { ...d, target: inArea(d.target) } : { ...d, source: inArea(d.source) });
    }
  });
  return out;
}

/** Unit managers that run the staging units, one per pilot handle. */
const managers = new WeakMap<ComputePilot, Promise<UnitManager>>();

/**
 * Runs directives into (`in`) or out of (`out`) the pilot's staging area. Waits for the pilot to be
 * launched (its agent runs the staging unit once active). @throws IncorrectState on a final pilot,
 * NoSuccess naming the directive and the cause when staging fails.
 */
export async function stagePilot(
  pilot: ComputePilot,
  raw: StagingDirectiveInput | StagingDirectiveInput[],
  direction: 'in' | 'out',
): Promise<void> {
  const name = direction === 'in' ? 'stageIn' : 'stageOut';
  const directives = pilotDirectives(raw, direction, `pilot ${pilot.uid} ${name}`);
  const state = await pilot.wait({
    state: [
      PilotState.PENDING_ACTIVE,
      PilotState.ACTIVE,
      PilotState.DONE,
      PilotState.FAILED,
      PilotState.CANCELED,
    ],
    timeout: STAGE_TIMEOUT_S,
  });
  if (isFinal(pilotModel, state))
    throw new IncorrectState(`pilot ${pilot.uid} ${name}: the pilot is ${state}`, { obj: pilot.uid });
  let umgr = managers.get(pilot);
  if (!umgr) {
    umgr = (async () => {
      const m = await UnitManager.create(pilot.pilotManager.session, 'direct_submission');
      await m.addPilots(pilot);
      return m;
    })();
    managers.set(pilot, umgr);
  }
  const unit = await (await umgr).submitUnits({
    name: `pilot.${name}`,
    executable: '/bin/true',
    ...(direction === 'in' ? { inputStaging: directives } : { outputStaging: directives }),
  });
  const end = await unit.wait({ timeout: STAGE_TIMEOUT_S });
  if (end !== UnitState.DONE)
    throw new NoSuccess(`pilot ${pilot.uid} ${name} (${unit.uid}) ${end}: ${unit.log.join('; ')}`, {
      obj: pilot.uid,
    });
}
