/**
 * Presigned URLs on the TRANSFER bucket, for the SDK (through the API) and the agent (through the agent
 * routes): neither ever holds AWS credentials, each URL allows one operation on one object for
 * `SORTIE_TRANSFER_URL_SECONDS`. Signed with SigV4 as S3 wants it (query-string auth, unsigned payload);
 * a PUT carries the content's SHA-256 as signed object metadata, which the downloader checks.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { DoesNotExist } from '../../core/errors.ts';
import { type PartRange, partPlan, SINGLE_PUT_MAX_BYTES, type TransferObject } from '../../core/transfer.ts';
import { ENV } from '../../stacks/manifest.ts';
import { env, s3Client } from './aws.ts';

/** The metadata header that carries the content's SHA-256 (S3 keeps `x-amz-meta-*` with the object). */
export const SHA256_HEADER = 'x-amz-meta-sha256';

/** A presigned request: the URL and the headers the caller must send with it (they are signed). */
export interface SignedRequest {
  url: string;
  headers: Record<string, string>;
}

/** What an uploader gets: one PUT, or a multipart upload with a URL per part. */
export type UploadPlan =
  | { key: string; single: SignedRequest }
  | { key: string; uploadId: string; parts: (PartRange & SignedRequest)[] };

/** SHA-256 (or its HMAC) in the shape the signer wants, from node:crypto. */
class NodeSha256 {
  private h: Hash | Hmac;
  private readonly secret: string | Buffer | undefined;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.secret =
      secret === undefined || typeof secret === 'string'
        ? secret
        : ArrayBuffer.isView(secret)
          ? Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength)
          : Buffer.from(secret);
    this.h = this.fresh();
  }
  private fresh(): Hash | Hmac {
    return this.secret ? createHmac('sha256', this.secret) : createHash('sha256');
  }
  update(data: string | Uint8Array): void {
    this.h.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset(): void {
    this.h = this.fresh();
  }
}

function urlSeconds(): number {
  const n = Number(process.env[ENV.transferUrlSeconds] ?? 3600);
  return Number.isFinite(n) && n >= 1 ? Math.min(Math.floor(n), 7 * 24 * 3600) : 3600;
}

/** Presigns `method` on `key` (with `query`, e.g. a part number), signing `headers` into it. */
async function presign(
  method: 'GET' | 'PUT',
  key: string,
  query: Record<string, string> = {},
  headers: Record<string, string> = {},
): Promise<SignedRequest> {
  const s3 = s3Client();
  const bucket = env(ENV.bucket);
  const region = await s3.config.region();
  const endpoint = process.env.AWS_ENDPOINT_URL_S3;
  const escaped = key.split('/').map(encodeURIComponent).join('/');
  const base = endpoint
    ? new URL(`${endpoint.replace(/\/$/, '')}/${bucket}/${escaped}`)
    : new URL(`https://${bucket}.s3.${region}.amazonaws.com/${escaped}`);
  const signer = new SignatureV4({
    credentials: s3.config.credentials,
    region,
    service: 's3',
    sha256: NodeSha256,
    uriEscapePath: false,
    applyChecksum: false,
  });
  const signed = await signer.presign(
    {
      method,
      protocol: base.protocol,
      hostname: base.hostname,
      ...(base.port ? { port: Number(base.port) } : {}),
      path: base.pathname,
      query,
      headers: { host: base.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...headers },
    },
    // The metadata stays a header the uploader must send (signed), so it cannot store another checksum.
    { expiresIn: urlSeconds(), unhoistableHeaders: new Set(Object.keys(headers)) },
  );
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(signed.query ?? {}))
    for (const one of Array.isArray(v) ? v : [v ?? '']) qs.append(k, one);
  return { url: `${base.origin}${base.pathname}?${qs}`, headers };
}

/** A GET URL for an object. */
export function downloadUrl(key: string): Promise<SignedRequest> {
  return presign('GET', key);
}

/**
 * Plans the upload of `object`: one presigned PUT up to {@link SINGLE_PUT_MAX_BYTES}, else a multipart
 * upload (started here, with the checksum as its metadata) and a presigned URL per part.
 */
export async function uploadPlan(object: TransferObject): Promise<UploadPlan> {
  if (object.size <= SINGLE_PUT_MAX_BYTES)
    return {
      key: object.key,
      single: await presign('PUT', object.key, {}, { [SHA256_HEADER]: object.sha256 }),
    };
  const started = await s3Client().send(
    new CreateMultipartUploadCommand({
      Bucket: env(ENV.bucket),
      Key: object.key,
      Metadata: { sha256: object.sha256 },
    }),
  );
  const uploadId = started.UploadId ?? '';
  const parts = await Promise.all(
    partPlan(object.size).map(async (p) => ({
      ...p,
      ...(await presign('PUT', object.key, { partNumber: String(p.number), uploadId })),
    })),
  );
  return { key: object.key, uploadId, parts };
}

/** Completes a multipart upload from its parts' ETags (each part as the uploader's PUT answered it). */
export async function completeUpload(
  key: string,
  uploadId: string,
  parts: { number: number; etag: string }[],
): Promise<void> {
  await s3Client().send(
    new CompleteMultipartUploadCommand({
      Bucket: env(ENV.bucket),
      Key: key,
      UploadId: uploadId,
      MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.number, ETag: p.etag })) },
    }),
  );
}

/** Drops a multipart upload that will not be completed (a cut transfer): its parts are deleted. */
export async function abortUpload(key: string, uploadId: string): Promise<void> {
  await s3Client()
    .send(new AbortMultipartUploadCommand({ Bucket: env(ENV.bucket), Key: key, UploadId: uploadId }))
    .catch(() => {});
}

/** Size and checksum of a stored object. @throws DoesNotExist when there is none (never uploaded). */
export async function objectInfo(key: string, what: string): Promise<TransferObject> {
  try {
    const head = await s3Client().send(new HeadObjectCommand({ Bucket: env(ENV.bucket), Key: key }));
    return { key, size: head.ContentLength ?? 0, sha256: head.Metadata?.sha256 ?? '' };
  } catch (err) {
    const name = (err as { name?: string }).name;
    if (name === 'NotFound' || name === 'NoSuchKey')
      throw new DoesNotExist(`${what}: no such object (not uploaded, or deleted by cleanup or expiry)`, {
        obj: key,
      });
    throw err;
  }
}

/** Deletes every object under `prefix` (a session's), 1,000 a request; returns how many. */
export async function deletePrefix(prefix: string): Promise<number> {
  const s3 = s3Client();
  const Bucket = env(ENV.bucket);
  let deleted = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }),
    );
    const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
    if (keys.length) {
      await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys, Quiet: true } }));
      deleted += keys.length;
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return deleted;
}
