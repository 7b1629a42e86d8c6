/**
 * Staging names and path rules without the directive schema (no zod), so that the agent bundle, which
 * runs them on the resource, stays small: RP's action and flag constants, the staging area, and where a
 * directive's path points.
 */

/** Staging actions (RP constants; the values are the wire strings). */
export const StagingAction = { COPY: 'Copy', LINK: 'Link', MOVE: 'Move', TRANSFER: 'Transfer' } as const;
/** A staging action's wire value. */
export type StagingAction = (typeof StagingAction)[keyof typeof StagingAction];

/** Staging flags (RP constants). */
export const StagingFlag = { CREATE_PARENTS: 'CreateParents', SKIP_FAILED: 'SkipFailed' } as const;
/** A staging flag's wire value. */
export type StagingFlag = (typeof StagingFlag)[keyof typeof StagingFlag];

/** The pilot's shared staging area, a folder of its sandbox (RP: `<pilot sandbox>/staging_area`). */
export const STAGING_AREA = 'staging_area';
/** RP's name for a file of the staging area: `staging:///name`. */
export const STAGING_SCHEME = 'staging:///';

/**
 * Where a directive's path points on the resource: `staging:///x` in the pilot's staging area,
 * `file:///p` and `/p` as given, a relative path under `base` (RP's rules: input sources and output
 * targets are relative to the pilot sandbox, input targets and output sources to the unit sandbox).
 * Pure string work (POSIX paths), so the control plane and the agent agree.
 */
export function resolveStagingPath(p: string, base: string, pilotSandbox: string): string {
  if (p.startsWith(STAGING_SCHEME))
    return joinPosix(joinPosix(pilotSandbox, STAGING_AREA), p.slice(STAGING_SCHEME.length));
  const plain = p.startsWith('file://') ? p.slice('file://'.length) : p;
  return plain.startsWith('/') ? normalizePosix(plain) : joinPosix(base, plain);
}

function joinPosix(a: string, b: string): string {
  return normalizePosix(`${a}/${b}`);
}

function normalizePosix(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return `/${out.join('/')}`;
}
