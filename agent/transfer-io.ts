/**
 * Streaming file transfer over presigned S3 URLs, used on both sides of a TRANSFER directive: by the agent
 * (inputs down, outputs up) and by the SDK (inputs up, outputs down). Files go through in chunks (never
 * whole in memory: a part at most is read at a time, streamed from disk), every upload carries the file's
 * SHA-256, and every download is written under a temporary name beside the target, checked (size and
 * SHA-256) and only then renamed to the target: a cut or corrupt transfer never leaves a file under the
 * target's name. Every request has an idle timeout, so a stalled connection fails instead of hanging.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

/** A presigned request: URL and the (signed) headers to send with it. */
export interface Signed {
  url: string;
  headers: Record<string, string>;
}

/** What an upload answer holds: one PUT, or the parts of a multipart upload. */
export type UploadAnswer =
  | { key: string; single: Signed }
  | { key: string; uploadId: string; parts: (Signed & { number: number; start: number; end: number })[] };

/** What a download answer holds: the object's size and checksum and its GET URL. */
export interface DownloadAnswer extends Signed {
  key: string;
  size: number;
  sha256: string;
}

/** Seconds without a byte moving before a transfer request is given up. */
const IDLE_MS = 60_000;

/** Size and SHA-256 of a file, read as a stream. */
export async function fileDigest(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

/** Why S3 refused a request: its `<Message>` (e.g. `Request has expired`), else the status. */
async function s3Refusal(res: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of res) {
    if (text.length < 4096) text += String(chunk);
  }
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
  return `HTTP ${res.statusCode}${message ? ` ${message}` : ''}`;
}

/** One HTTP request with a streamed body; resolves with the response (any status). */
function request(
  method: 'GET' | 'PUT',
  signed: Signed,
  body?: { stream: NodeJS.ReadableStream; length: number },
): Promise<IncomingMessage> {
  const url = new URL(signed.url);
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      url,
      {
        method,
        headers: { ...signed.headers, ...(body ? { 'content-length': String(body.length) } : {}) },
        timeout: IDLE_MS,
      },
      resolve,
    );
    req.on('timeout', () => req.destroy(new Error(`no data for ${IDLE_MS / 1000} s`)));
    req.on('error', reject);
    if (body) {
      body.stream.on('error', (err) => req.destroy(err));
      body.stream.pipe(req);
    } else req.end();
  });
}

/** PUTs bytes [start, end) of a file; returns the ETag S3 answered. */
async function putRange(file: string, signed: Signed, start: number, end: number): Promise<string> {
  // An empty range: createReadStream's `end` is inclusive, so an empty file needs an empty stream.
  const stream =
    end > start ? createReadStream(file, { start, end: end - 1, highWaterMark: 1 << 20 }) : emptyStream();
  const res = await request('PUT', signed, { stream, length: end - start });
  if (res.statusCode !== 200) throw new Error(`upload refused: ${await s3Refusal(res)}`);
  res.resume();
  return String(res.headers.etag ?? '');
}

function emptyStream(): NodeJS.ReadableStream {
  return createReadStream('/dev/null');
}

/**
 * Uploads a file as the answer says: one PUT, or each part in turn (one part in memory at most: none, in
 * fact, since parts stream from disk). Returns the parts' ETags for a multipart upload (the caller
 * completes it through the API), none for one PUT.
 */
export async function uploadFile(
  file: string,
  answer: UploadAnswer,
  size: number,
): Promise<{ number: number; etag: string }[] | undefined> {
  if ('single' in answer) {
    await putRange(file, answer.single, 0, size);
    return undefined;
  }
  const etags: { number: number; etag: string }[] = [];
  for (const p of answer.parts)
    etags.push({ number: p.number, etag: await putRange(file, p, p.start, p.end) });
  return etags;
}

let tmpCounter = 0;

/**
 * Downloads an object to `target`: streamed to a temporary name beside it while hashed, checked against
 * the expected size and SHA-256, then renamed over the target. On any failure the temporary file is
 * removed and the target is left as it was. `createParents` makes the target's folder.
 */
export async function downloadFile(
  answer: DownloadAnswer,
  target: string,
  createParents = true,
): Promise<void> {
  if (createParents) await mkdir(path.dirname(target), { recursive: true });
  else await stat(path.dirname(target));
  const tmp = path.join(
    path.dirname(target),
    `.${path.basename(target)}.sortie-part-${process.pid}-${++tmpCounter}`,
  );
  try {
    const res = await request('GET', answer);
    if (res.statusCode !== 200) throw new Error(`download refused: ${await s3Refusal(res)}`);
    const hash = createHash('sha256');
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      size += chunk.length;
    });
    // A connection cut halfway ends the pipeline with an error (premature close), never as a short file.
    await pipeline(res, createWriteStream(tmp));
    if (size !== answer.size) throw new Error(`transfer cut: got ${size} of ${answer.size} bytes`);
    const sha256 = hash.digest('hex');
    // Every object Sortie stores carries its checksum; one without it was not written by Sortie.
    if (!answer.sha256) throw new Error('the object carries no SHA-256 to check against');
    if (sha256 !== answer.sha256)
      throw new Error(`checksum mismatch: SHA-256 ${sha256}, expected ${answer.sha256}`);
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}
