/**
 * The agent's data staging on the resource (RP 0.22's agent input and output stagers): COPY, LINK and
 * MOVE of a unit's directives, and the resource's half of TRANSFER (through S3, agent/transfer-io.ts), before its launch script (input: source → unit sandbox) and after it
 * (output: unit sandbox → target). Paths follow RP (core/staging.ts `resolveStagingPath`).
 *
 * Nothing half-done is left under the target's name: a copy or a link is made under a temporary name
 * beside the target and renamed over it, so a reader (or a retried directive) sees the old file or the
 * whole new one. A directive that fails throws a {@link StagingError} naming the directive and the OS
 * error; the executor ends the unit FAILED with that message in its log.
 */
import { cp, lstat, mkdir, readdir, rename, rm, stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { StagingDirective } from '../core/staging.ts';
import { resolveStagingPath, StagingFlag } from '../core/staging-paths.ts';
import {
  type DownloadAnswer,
  downloadFile,
  fileDigest,
  type UploadAnswer,
  uploadFile,
} from './transfer-io.ts';

/** The control plane's transfer route as the agent calls it (`POST /agent/transfers`). */
export type TransferCall = (body: Record<string, unknown>) => Promise<unknown>;

/** Where a unit's directives resolve, and for TRANSFER the unit and the route that presigns its URLs. */
export interface StagingPlaces {
  pilotSandbox: string;
  unitSandbox: string;
  transfer?: {
    uid: string;
    call: TransferCall;
    /** The unit's directive lists: a TRANSFER names its object by its index in them. */
    input: readonly StagingDirective[];
    output: readonly StagingDirective[];
  };
}

/** Input directives run before the launch script, output directives after it. */
export type StagingDirection = 'input' | 'output';

/** A directive that failed: the message names the direction, action, both paths and the OS error. */
export class StagingError extends Error {
  constructor(
    message: string,
    readonly directive: StagingDirective,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StagingError';
  }
}

let tmpCounter = 0;

/** A name beside `target` that no other agent or directive uses. */
function tmpNameFor(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.sortie-tmp-${process.pid}-${++tmpCounter}`,
  );
}

/** Source and target of a directive as absolute paths on the resource (RP's rules per direction). */
export function placesOf(
  d: StagingDirective,
  direction: StagingDirection,
  at: StagingPlaces,
): { source: string; target: string } {
  // Input: sources relative to the pilot sandbox, targets to the unit sandbox; output the other way.
  const [sourceBase, targetBase] =
    direction === 'input' ? [at.pilotSandbox, at.unitSandbox] : [at.unitSandbox, at.pilotSandbox];
  return {
    source: resolveStagingPath(d.source, sourceBase, at.pilotSandbox),
    target: resolveStagingPath(d.target, targetBase, at.pilotSandbox),
  };
}

/** Runs one directive; throws a {@link StagingError} when it fails. */
export async function runDirective(
  d: StagingDirective,
  direction: StagingDirection,
  at: StagingPlaces,
): Promise<void> {
  if (d.action === 'Transfer') return runTransfer(d, direction, at);
  const { source, target } = placesOf(d, direction, at);
  let tmp: string | undefined;
  try {
    // Checked first: a LINK to a missing file would succeed and leave a dangling link (RP #2392).
    await stat(source);
    // Without CREATE_PARENTS a missing folder fails the directive (cp would make it silently).
    if (d.flags.includes(StagingFlag.CREATE_PARENTS)) await mkdir(path.dirname(target), { recursive: true });
    else await stat(path.dirname(target));
    if (d.action === 'Move') {
      try {
        await rename(source, target);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      }
      // Another file system: copy whole, rename into place, then remove the source.
      tmp = tmpNameFor(target);
      await cp(source, tmp, { recursive: true, preserveTimestamps: true });
      await rename(tmp, target);
      tmp = undefined;
      await rm(source, { recursive: true, force: true });
      return;
    }
    tmp = tmpNameFor(target);
    if (d.action === 'Link') await symlink(source, tmp);
    else if (d.action === 'Copy') await cp(source, tmp, { recursive: true, preserveTimestamps: true });
    else throw new Error(`${d.action} is not an action the agent runs`);
    await renameOver(tmp, target);
    tmp = undefined;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new StagingError(`${direction} staging ${d.action} ${source} → ${target} failed: ${why}`, d, {
      cause: err,
    });
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true }).catch(() => {});
  }
}

/**
 * A TRANSFER on the agent's side, through S3 with URLs the control plane presigns: an input is downloaded
 * to its target (relative: under the unit sandbox), an output's source (relative: under the unit sandbox)
 * is uploaded; the SDK does the other half on the user's machine.
 */
async function runTransfer(
  d: StagingDirective,
  direction: StagingDirection,
  at: StagingPlaces,
): Promise<void> {
  const local =
    direction === 'input'
      ? resolveStagingPath(d.target, at.unitSandbox, at.pilotSandbox)
      : resolveStagingPath(d.source, at.unitSandbox, at.pilotSandbox);
  const [from, to] = direction === 'input' ? [d.source, local] : [local, d.target];
  try {
    const t = at.transfer;
    if (!t) throw new Error('no transfer route (agent without a control plane)');
    const index = (direction === 'input' ? t.input : t.output).indexOf(d);
    if (direction === 'input') {
      const answer = (await t.call({ op: 'download', uid: t.uid, index })) as DownloadAnswer;
      await downloadFile(answer, local, d.flags.includes(StagingFlag.CREATE_PARENTS));
      return;
    }
    const { size, sha256 } = await fileDigest(local);
    const answer = (await t.call({ op: 'upload', uid: t.uid, index, size, sha256 })) as UploadAnswer;
    try {
      const parts = await uploadFile(local, answer, size);
      if (parts && 'uploadId' in answer)
        await t.call({ op: 'complete', key: answer.key, uploadId: answer.uploadId, parts });
    } catch (err) {
      if ('uploadId' in answer)
        await t.call({ op: 'abort', key: answer.key, uploadId: answer.uploadId }).catch(() => {});
      throw err;
    }
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new StagingError(`${direction} staging Transfer ${from} → ${to} failed: ${why}`, d, { cause: err });
  }
}

/**
 * rename(2) replaces a file or a link but not a directory; a target that is a directory (a re-run
 * copy of a folder) is removed first, then the new one renamed in.
 */
async function renameOver(tmp: string, target: string): Promise<void> {
  try {
    await rename(tmp, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') throw err;
    const old = await lstat(target);
    if (!old.isDirectory()) throw err;
    await rm(target, { recursive: true, force: true });
    await rename(tmp, target);
  }
}

/**
 * The directives to run, in order: all of them for input and for a unit that ended well; for a unit that
 * failed only those without SKIP_FAILED (RP: a failed unit's output is not staged when the flag is set).
 */
export function directivesToRun(
  directives: readonly StagingDirective[] | undefined,
  unitFailed: boolean,
): StagingDirective[] {
  const all = directives ?? [];
  return unitFailed ? all.filter((d) => !d.flags.includes(StagingFlag.SKIP_FAILED)) : [...all];
}

/** Runs directives one after another; the first failure stops and throws (the unit then FAILS). */
export async function runDirectives(
  directives: readonly StagingDirective[],
  direction: StagingDirection,
  at: StagingPlaces,
): Promise<void> {
  for (const d of directives) await runDirective(d, direction, at);
}

/** What a pilot's cleanup keeps (RP keeps the logs): the agent's output, its pid file, and `*.log`/`*.out`/`*.err`. */
const KEPT = /^agent\.pid$|\.(log|out|err)$/;

/**
 * RP's pilot `cleanup`: at the pilot's end the agent removes its sandbox's content (unit sandboxes, the
 * staging area, its bundle and `agent.json` with the pilot secret) and keeps the logs. Returns the
 * names removed.
 */
export async function cleanupPilotSandbox(sandbox: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(sandbox)) {
    if (KEPT.test(name)) continue;
    await rm(path.join(sandbox, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
