/**
 * The edge of every HTTP handler: route by `routeKey`, parse the JSON body, and turn errors into
 * responses in one place — Sortie errors keep their status and message (4xx tell the caller exactly
 * what to fix), anything else is a logged 500 with a generic message.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { BadParameter, httpStatusOf, PilotException, toWire } from '../../core/errors.ts';
import { logger } from './log.ts';
import { withMetrics } from './metrics.ts';

/** A parsed request, as route functions see it. */
export interface Request {
  event: APIGatewayProxyEventV2;
  params: Record<string, string>;
  query: Record<string, string>;
  headers: Record<string, string | undefined>;
  /** The JSON body (an object; `{}` when absent). */
  body: Record<string, unknown>;
}

/** A route function: returns the JSON body of a 200, or throws a Sortie error. */
export type RouteFn = (req: Request) => Promise<unknown>;

function json(statusCode: number, body: unknown): APIGatewayProxyStructuredResultV2 {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

function parseBody(event: APIGatewayProxyEventV2): Record<string, unknown> {
  if (!event.body) return {};
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new BadParameter(`request body: not valid JSON (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new BadParameter(
      `request body: must be a JSON object, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`,
    );
  }
  return parsed as Record<string, unknown>;
}

/**
 * Longest id, page token or other key-ish string accepted (UTF-8 bytes). Ids are short (`unit.000000`);
 * DynamoDB refuses a key over 2,048 bytes with a ValidationException, which would surface as a 5xx.
 */
export const MAX_ID_BYTES = 1024;

function checkIdLength(value: string, what: string): void {
  if (Buffer.byteLength(value) > MAX_ID_BYTES)
    throw new BadParameter(`${what}: at most ${MAX_ID_BYTES} bytes, got ${Buffer.byteLength(value)}`);
}

/** Path parameters and query values are ids or page tokens: refuse oversized ones before they reach a key. */
function checkParams(event: APIGatewayProxyEventV2): void {
  for (const [k, v] of Object.entries(event.pathParameters ?? {}))
    if (v !== undefined) checkIdLength(v, `path parameter ${k}`);
  for (const [k, v] of Object.entries(event.queryStringParameters ?? {}))
    if (v !== undefined) checkIdLength(v, `query parameter ${k}`);
}

/** A route's answer sent as it is (e.g. a page), not as JSON. */
export class RawResponse {
  constructor(readonly result: APIGatewayProxyStructuredResultV2) {}
}

/** Builds an API Gateway (payload 2.0) handler from a route table keyed like the manifest's ROUTES. */
export function httpHandler(routes: Record<string, RouteFn>) {
  return withMetrics(async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
    const fn = routes[event.routeKey];
    if (!fn) return json(404, toWire(new PilotException(`no route ${event.routeKey}`)));
    try {
      checkParams(event);
      const body = parseBody(event);
      const out = await fn({
        event,
        params: (event.pathParameters ?? {}) as Record<string, string>,
        query: (event.queryStringParameters ?? {}) as Record<string, string>,
        headers: event.headers ?? {},
        body,
      });
      return out instanceof RawResponse ? out.result : json(200, out ?? {});
    } catch (err) {
      const status = err instanceof PilotException ? httpStatusOf(err) : 500;
      if (status >= 500) {
        logger.error('request failed', { routeKey: event.routeKey, error: err as Error });
        // Only Sortie's own server errors carry a message meant for users; anything else stays in the log.
        if (!(err instanceof PilotException))
          return json(500, toWire(new PilotException('internal error; see the function log')));
      }
      return json(status, toWire(err));
    }
  });
}

/** Reads a required string field of a body, naming it in the error. */
export function str(body: Record<string, unknown>, field: string, where: string): string {
  const v = body[field];
  if (typeof v !== 'string' || v === '')
    throw new BadParameter(`${where}.${field}: must be a non-empty string, got ${JSON.stringify(v)}`);
  checkIdLength(v, `${where}.${field}`);
  return v;
}

/** Reads an optional list of strings, naming it in the error. */
export function strList(body: Record<string, unknown>, field: string, where: string): string[] | undefined {
  const v = body[field];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new BadParameter(
      `${where}.${field}: must be a list of strings, got ${JSON.stringify(v)?.slice(0, 200)}`,
    );
  }
  v.forEach((x: string, i) => {
    checkIdLength(x, `${where}.${field}[${i}]`);
  });
  return v as string[];
}
