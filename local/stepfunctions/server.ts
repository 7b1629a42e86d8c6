/**
 * The AWS JSON 1.0 protocol on node:http: `POST /` with `X-Amz-Target: AWSStepFunctions.<Action>` and a JSON
 * body; answers JSON, or `{__type, message}` with HTTP 400 (client errors) / 500 (faults of this server),
 * which the SDK turns into its named exception classes.
 */

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type Backend, isRequest } from './backend.ts';
import { ApiError } from './errors.ts';

const TARGET_PREFIX = 'AWSStepFunctions.';
const CONTENT_TYPE = 'application/x-amz-json-1.0';
// Far above any real request (definitions are at most 1 MB, task outputs 256 KB).
const MAX_BODY_BYTES = 8 * 1024 * 1024;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': CONTENT_TYPE,
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
  });
  res.end(text);
}

function sendError(res: ServerResponse, error: unknown): void {
  if (error instanceof ApiError) {
    send(res, error.status, { __type: error.type, message: error.message });
  } else {
    send(res, 500, {
      __type: 'InternalFailure',
      message: error instanceof Error ? error.message : String(error),
    });
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new ApiError('ValidationException', 'Request body too large', 413);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function handle(backend: Backend, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const target = req.headers['x-amz-target'];
    if (req.method !== 'POST' || typeof target !== 'string' || !target.startsWith(TARGET_PREFIX)) {
      throw new ApiError(
        'UnknownOperationException',
        'Expected POST with X-Amz-Target: AWSStepFunctions.<Action>',
      );
    }
    const text = await readBody(req);
    let body: unknown;
    try {
      body = text.length === 0 ? {} : JSON.parse(text);
    } catch {
      throw new ApiError('SerializationException', 'The request body is not JSON');
    }
    if (!isRequest(body))
      throw new ApiError('SerializationException', 'The request body must be a JSON object');
    send(res, 200, backend.handle(target.slice(TARGET_PREFIX.length), body));
  } catch (error) {
    sendError(res, error);
  }
}

/** Creates (but does not start) the HTTP server for a backend. */
export function createApiServer(backend: Backend): Server {
  return createServer((req, res) => {
    void handle(backend, req, res);
  });
}
