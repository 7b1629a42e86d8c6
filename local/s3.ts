/**
 * The embedded S3 for TRANSFER: fauxqs (the SQS emulator, which also speaks S3's wire protocol on the same
 * port, path-style) with what it leaves out and presigned URLs need: a URL past its `X-Amz-Expires` is
 * refused with S3's 403 `Request has expired`. Signatures are not checked (fauxqs ignores auth). Test
 * faults that cannot be caused for real on demand: a clock ahead of the signer's (to expire a URL without
 * waiting) and downloads cut after some bytes (a broken connection).
 */
import { Readable } from 'node:stream';
import type { buildApp } from 'fauxqs';
import type { S3Faults } from './s3-faults.ts';

export type { S3Faults } from './s3-faults.ts';

type FauxqsApp = ReturnType<typeof buildApp>;
/** The parts of fastify's request and reply these hooks use. */
interface HookRequest {
  url: string;
  method: string;
}
interface HookReply {
  statusCode: number;
  code(n: number): HookReply;
  header(k: string, v: string): HookReply;
  send(body: string): unknown;
}

/** `20260101T120000Z` → epoch milliseconds, or NaN. */
export function amzDateMs(v: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(v);
  if (!m) return Number.NaN;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  return Date.UTC(y as number, (mo as number) - 1, d, h, mi, s);
}

function queryOf(url: string): URLSearchParams {
  const i = url.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : url.slice(i + 1));
}

/** Adds the expiry check and the faults to a fauxqs app (before it listens). `faults` is read per request. */
export function guardS3(app: FauxqsApp, faults: S3Faults): void {
  app.addHook('onRequest', async (req: HookRequest, reply: HookReply) => {
    const q = queryOf(req.url);
    const date = q.get('X-Amz-Date');
    const expires = q.get('X-Amz-Expires');
    if (!date || !expires) return;
    const now = Date.now() + (faults.clockAheadSeconds ?? 0) * 1000;
    const until = amzDateMs(date) + Number(expires) * 1000;
    if (!(now <= until)) {
      await reply
        .code(403)
        .header('content-type', 'application/xml')
        .send(
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>',
        );
    }
  });
  app.addHook('onSend', async (req: HookRequest, reply: HookReply, payload: unknown) => {
    const cut = faults.cutDownloadsAfterBytes;
    if (cut === undefined || req.method !== 'GET' || reply.statusCode !== 200) return payload;
    if (!queryOf(req.url).get('X-Amz-Signature') || !Buffer.isBuffer(payload)) return payload;
    reply.header('content-length', String(payload.length));
    const head = payload.subarray(0, cut);
    return new Readable({
      read() {
        this.push(head);
        setImmediate(() => this.destroy(new Error('connection cut (test fault)')));
      },
    });
  });
}
