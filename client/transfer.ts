/**
 * The SDK's half of TRANSFER directives (RP's UMGR stager): a unit's input files are uploaded from this
 * machine before the unit is submitted, and its outputs are downloaded here when it is DONE. Both go
 * through S3 with URLs the API presigns for the session (agent/transfer-io.ts streams them); paths on
 * this machine are as given, a relative one under the working directory (RP: the client's cwd).
 */
import path from 'node:path';
import {
  type DownloadAnswer,
  downloadFile,
  fileDigest,
  type UploadAnswer,
  uploadFile,
} from '../agent/transfer-io.ts';
import { BadParameter, NoSuccess } from '../core/errors.ts';
import type { StagingDirective } from '../core/staging.ts';
import { MAX_TRANSFER_BYTES } from '../core/transfer.ts';
import type { UnitRecord } from '../core/wire.ts';

/** What this module needs of a session: its transfer route. */
export type TransferRoute = (body: Record<string, unknown>) => Promise<unknown>;

/** Uploads at once (each streams from disk, so this bounds open files and sockets, not memory). */
const PARALLEL = 8;

/** A path on this machine: `file://` stripped, relative ones under the working directory. */
export function localPath(p: string): string {
  return path.resolve(p.startsWith('file://') ? p.slice('file://'.length) : p);
}

/** Runs `fn` over `items`, `PARALLEL` at a time; the first failure rejects (the rest still finish). */
async function eachParallel<T>(items: readonly T[], fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item).catch((err: unknown) => errors.push(err));
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
  if (errors.length) throw errors[0];
}

/** Uploads one local file; returns the object that now holds it. */
async function uploadOne(
  route: TransferRoute,
  file: string,
  where: string,
): Promise<StagingDirective['object']> {
  let digest: { size: number; sha256: string };
  try {
    digest = await fileDigest(file);
  } catch (err) {
    throw new BadParameter(`${where}.source: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (digest.size > MAX_TRANSFER_BYTES)
    throw new BadParameter(
      `${where}.source: ${file} has ${digest.size} bytes, above the limit of ${MAX_TRANSFER_BYTES}`,
    );
  const answer = (await route({ op: 'upload', ...digest })) as UploadAnswer;
  try {
    const parts = await uploadFile(file, answer, digest.size);
    if (parts && 'uploadId' in answer)
      await route({ op: 'complete', key: answer.key, uploadId: answer.uploadId, parts });
  } catch (err) {
    if ('uploadId' in answer)
      await route({ op: 'abort', key: answer.key, uploadId: answer.uploadId }).catch(() => {});
    throw new NoSuccess(`${where}: upload of ${file} failed: ${(err as Error).message}`, { cause: err });
  }
  return { key: answer.key, ...digest };
}

/**
 * Uploads the files of every input TRANSFER directive and names each one's object in its directive
 * (normalised descriptions, changed in place). A file that cannot be read is a BadParameter naming the
 * unit and the directive; nothing is submitted then.
 */
export async function uploadInputs(
  route: TransferRoute,
  descriptions: { inputStaging?: StagingDirective[] | undefined }[],
): Promise<void> {
  const todo: { d: StagingDirective; where: string }[] = [];
  for (const [i, desc] of descriptions.entries()) {
    for (const [j, d] of (desc.inputStaging ?? []).entries())
      if (d.action === 'Transfer' && !d.object)
        todo.push({ d, where: `descriptions[${i}].inputStaging[${j}]` });
  }
  await eachParallel(todo, async ({ d, where }) => {
    const object = await uploadOne(route, localPath(d.source), where);
    if (object) d.object = object;
  });
}

/**
 * At most `limit` calls of the returned function run at once; the others wait their turn (FIFO). Bounds
 * the downloads of units that end together (a thousand DONE in one poll must not open a thousand sockets).
 */
export function limiter(limit = PARALLEL): <T>(fn: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (running >= limit) await new Promise<void>((go) => waiting.push(go));
    running++;
    try {
      return await fn();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}

/** The output TRANSFER directives of a unit, with their indices. */
export function outputTransfers(unit: UnitRecord): { d: StagingDirective; index: number }[] {
  return (unit.description.outputStaging ?? []).flatMap((d, index) =>
    d.action === 'Transfer' ? [{ d, index }] : [],
  );
}

/**
 * Downloads a DONE unit's TRANSFER outputs to their targets on this machine (each whole and checked, or
 * not at all). @throws NoSuccess naming the unit, the file and the cause.
 */
export async function downloadOutputs(route: TransferRoute, unit: UnitRecord): Promise<string[]> {
  const written: string[] = [];
  for (const { d, index } of outputTransfers(unit)) {
    const target = localPath(d.target);
    try {
      const answer = (await route({ op: 'download', uid: unit.uid, index })) as DownloadAnswer;
      await downloadFile(answer, target, d.flags.includes('CreateParents'));
      written.push(target);
    } catch (err) {
      throw new NoSuccess(
        `${unit.uid} output staging Transfer ${d.source} → ${target} failed: ${(err as Error).message}`,
        { obj: unit.uid, cause: err },
      );
    }
  }
  return written;
}
