/**
 * Keys and uids. One table (stacks/manifest.ts `TABLE`): the session item's pk is the session id; every
 * other entity's pk is `<sessionId>#<uid>`. `parent` groups children for the byParent index, `pilotKey`
 * groups a pilot's units for the byPilot index, `changed` orders byParent and serves as a change cursor.
 */
import { BadParameter } from '../core/errors.ts';
import { TABLE } from '../stacks/manifest.ts';

/** Name of the table's partition key attribute. */
export const PK = TABLE.partitionKey;

/** Kinds of entity with a per-session uid counter, and the width of their zero-padded number (RP-like). */
export const UID_WIDTH = { pmgr: 4, umgr: 4, pilot: 4, unit: 6 } as const;
/** An entity kind that gets per-session uids. */
export type UidKind = keyof typeof UID_WIDTH;

/** `unit` 7 → `unit.000007`. */
export function formatUid(kind: UidKind, n: number): string {
  return `${kind}.${String(n).padStart(UID_WIDTH[kind], '0')}`;
}

/** `unit.000007` → 7 (the inverse of {@link formatUid}); NaN for a uid not of `kind`. */
export function parseUid(kind: UidKind, uid: string): number {
  return uid.startsWith(`${kind}.`) ? Number(uid.slice(kind.length + 1)) : Number.NaN;
}

/** pk of an entity of a session. */
export function entityPk(sessionId: string, uid: string): string {
  return `${sessionId}#${uid}`;
}

/**
 * byParent partition of a manager's records (a pmgr's pilots, a umgr's units): its change feed, and what
 * the store's observer names when one of them is written (store/observer.ts `wrote`).
 */
export function feedOf(sessionId: string, managerUid: string): string {
  return entityPk(sessionId, managerUid);
}

/** byParent partition of a session's managers of one kind (managers have no owning manager). */
export function managersParent(sessionId: string, kind: 'pmgr' | 'umgr'): string {
  return `${sessionId}#${kind}s`;
}

/**
 * byPilot partition that holds every live pilot: from its creation until Finalize (or the reconciler) has
 * recorded its end and swept its units. Session ids cannot contain `#`, so no pilot's unit partition
 * (`<sessionId>#<pilotId>`) can be named this. One partition for the deployment: it is written twice per
 * pilot lifetime and read by the reconciler only.
 */
export const LIVE_PILOTS = '#live-pilots';

/**
 * byPilot partition that holds every session closed with cleanup whose records are not purged yet (the
 * session item carries it from the close until the reconciler deletes it, last of the session's records).
 * Like {@link LIVE_PILOTS}, no pilot's partition can be named this; read by the reconciler only.
 */
export const PURGE_SESSIONS = '#purge';

/**
 * byPilot partition of a backfilling unit manager's wait queue: its UNSCHEDULED units, bound to no pilot
 * yet, ordered by pk (uids are zero-padded, so submission order: FIFO). A claim moves a unit from here
 * to its pilot's partition in the same guarded write. `#queue` cannot be a pilot's uid, so no pilot's
 * partition is named this.
 */
export function queueKey(sessionId: string, umgrId: string): string {
  return `${sessionId}#${umgrId}#queue`;
}

/** The `changed` sort key: ISO time, then uid so that writes in the same millisecond stay distinct. */
export function changedKey(time: string, uid: string): string {
  return `${time}#${uid}`;
}

/** Name of the per-session counter attribute of a kind. */
export function counterAttr(kind: UidKind): string {
  return `next_${kind}`;
}

/**
 * Session ids end up inside every key, split on `#`; refuse ids that would break that.
 * @throws BadParameter
 */
export function checkSessionId(sessionId: string): void {
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(sessionId)) {
    throw new BadParameter(`session id must be 1-128 of [A-Za-z0-9._:-], got ${JSON.stringify(sessionId)}`);
  }
}
