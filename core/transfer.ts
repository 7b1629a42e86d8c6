/**
 * TRANSFER through S3 as data: the size limits, how a file is cut into multipart parts, where a session's
 * objects live, and the checks of what the SDK and the agent ask the API for. The I/O (presigning,
 * streaming) is in functions/lib/transfers.ts and agent/transfer-io.ts.
 */
import { BadParameter } from './errors.ts';

/** A part of a multipart upload (S3 takes 5 MiB to 5 GiB; the embedded S3 takes at most 11 MiB a request). */
export const PART_BYTES = 8 * 1024 * 1024;
/** Files up to this size go in one PUT; larger ones in parts of {@link PART_BYTES}. */
export const SINGLE_PUT_MAX_BYTES = PART_BYTES;
/**
 * Parts of one file. S3 allows 10,000; the API presigns every part URL in one answer, so the cap keeps
 * that answer small (about 0.8 MB) and puts the largest file at 10 GiB.
 */
export const MAX_PARTS = 1280;
/** The largest file a TRANSFER directive moves: 10 GiB. */
export const MAX_TRANSFER_BYTES = PART_BYTES * MAX_PARTS;

/** An object of the TRANSFER bucket as a directive or an answer names it. */
export interface TransferObject {
  key: string;
  size: number;
  /** SHA-256 of the content (hex), checked by whoever downloads it before the file gets its name. */
  sha256: string;
}

/** A byte range of a file, `end` exclusive, with its S3 part number (from 1). */
export interface PartRange {
  number: number;
  start: number;
  end: number;
}

/** The parts of a file of `size` bytes (one part, maybe empty, when it fits one PUT). */
export function partPlan(size: number, partBytes = PART_BYTES): PartRange[] {
  if (size <= partBytes) return [{ number: 1, start: 0, end: size }];
  const out: PartRange[] = [];
  for (let start = 0, n = 1; start < size; start += partBytes, n++)
    out.push({ number: n, start, end: Math.min(size, start + partBytes) });
  return out;
}

/** Key of an input file the SDK uploads for a session (`id` is the SDK's fresh UUID). */
export function inputKey(sessionId: string, id: string): string {
  return `${sessionId}/in/${id}`;
}

/** Key of output directive `index` of a unit (a rerun of the unit overwrites it). */
export function outputKey(sessionId: string, unitUid: string, index: number): string {
  return `${sessionId}/out/${unitUid}/${index}`;
}

/** Prefix of everything a session holds in the bucket (what `Session.close({cleanup})` deletes). */
export function sessionPrefix(sessionId: string): string {
  return `${sessionId}/`;
}

const HEX64 = /^[0-9a-f]{64}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Why a size and checksum cannot be transferred, or undefined: `where` names the field.
 */
export function sizeProblem(size: unknown, sha256: unknown, where: string): string | undefined {
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 0)
    return `${where}.size: must be a whole number of bytes, got ${JSON.stringify(size)}`;
  if (size > MAX_TRANSFER_BYTES)
    return `${where}.size: ${size} bytes is above the transfer limit of ${MAX_TRANSFER_BYTES} bytes (10 GiB)`;
  if (typeof sha256 !== 'string' || !HEX64.test(sha256))
    return `${where}.sha256: must be 64 lower-case hex digits, got ${JSON.stringify(sha256)}`;
  return undefined;
}

/**
 * Why an input TRANSFER directive's object cannot be used by a unit of `sessionId`, or undefined: the
 * SDK uploads the file first and names the object; a caller of the raw API who did not, or who names
 * another session's object, is refused at submit.
 */
export function inputObjectProblem(
  object: Partial<TransferObject> | undefined,
  sessionId: string,
  where: string,
): string | undefined {
  if (!object)
    return `${where}.object: a Transfer input must name the object its file was uploaded to (the SDK uploads the file and sets it); got none`;
  const prefix = `${sessionId}/in/`;
  const key = object.key;
  if (typeof key !== 'string' || !key.startsWith(prefix) || !UUID.test(key.slice(prefix.length)))
    return `${where}.object.key: must be an upload key of this session (${prefix}<uuid>), got ${JSON.stringify(key)}`;
  return sizeProblem(object.size, object.sha256, `${where}.object`);
}

/** The unit uid and directive index of an output key of `sessionId`, or undefined when it is not one. */
export function parseOutputKey(key: string, sessionId: string): { uid: string; index: number } | undefined {
  const prefix = `${sessionId}/out/`;
  if (!key.startsWith(prefix)) return undefined;
  const [uid, index, ...rest] = key.slice(prefix.length).split('/');
  if (!uid || rest.length > 0 || !/^\d+$/.test(index ?? '')) return undefined;
  return { uid, index: Number(index) };
}

/** The parts of a multipart upload as a caller lists them to complete it: numbers 1..count in order, each with its ETag. */
export function validParts(parts: unknown, count: number, where: string): { number: number; etag: string }[] {
  if (!Array.isArray(parts) || parts.length !== count)
    throw new BadParameter(`${where}.parts: must list the ${count} parts with their ETags`);
  return parts.map((p, i) => {
    const etag = (p as { etag?: unknown })?.etag;
    const number = (p as { number?: unknown })?.number;
    if (number !== i + 1 || typeof etag !== 'string' || etag.length === 0 || etag.length > 200)
      throw new BadParameter(
        `${where}.parts[${i}]: must be { number: ${i + 1}, etag }, got ${JSON.stringify(p)}`,
      );
    return { number, etag };
  });
}
