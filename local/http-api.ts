/**
 * API Gateway HTTP API (payload format 2.0) in front of the manifest's routes, on 127.0.0.1.
 *
 * Same event shape and the same error behaviour as the real service where Sortie depends on it:
 * an unknown route is 404 `{"message":"Not Found"}`, a handler that throws is 500
 * `{"message":"Internal Server Error"}`, and a result without `statusCode` is sent as JSON with 200.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { ROUTES } from '../stacks/manifest.ts';
import type { Authorize } from './jwt-authorizer.ts';
import { invoke } from './lambdas.ts';

/** The authorizer refused the request: 401, the function is not invoked. */
class Unauthorized extends Error {}

interface CompiledRoute {
  routeKey: string;
  method: string;
  pattern: RegExp;
  params: string[];
  fn: string;
}

/** Compiles `METHOD /a/{b}` route keys into matchers. */
export function compileRoutes(routes: Record<string, string>): CompiledRoute[] {
  return Object.entries(routes).map(([routeKey, fn]) => {
    const [method, routePath] = routeKey.split(' ') as [string, string];
    const params: string[] = [];
    // Route paths hold only literal segments and `{name}` parameters (API Gateway's syntax).
    const source = routePath
      .replace(/[.*+?^$()|[\]\\]/g, '\\$&')
      .replace(/\{(\w+)\}/g, (_m, name: string) => {
        params.push(name);
        return '([^/]+)';
      });
    return { routeKey, method, pattern: new RegExp(`^${source}$`), params, fn };
  });
}

/**
 * Decodes a path parameter; a malformed escape (`%ZZ`) is passed on as written, so the handler answers
 * for an id that does not exist instead of the decoder throwing out of the request handler (which ended
 * the whole process).
 */
function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Finds the route for a request, with its decoded path parameters. */
export function matchRoute(
  routes: CompiledRoute[],
  method: string,
  rawPath: string,
): { route: CompiledRoute; pathParameters: Record<string, string> } | undefined {
  for (const route of routes) {
    if (route.method !== method) continue;
    const m = route.pattern.exec(rawPath);
    if (!m) continue;
    const pathParameters: Record<string, string> = {};
    route.params.forEach((p, i) => {
      pathParameters[p] = decodeSegment(m[i + 1] ?? '');
    });
    return { route, pathParameters };
  }
  return undefined;
}

function toEvent(
  req: http.IncomingMessage,
  body: string,
  routeKey: string,
  pathParameters: Record<string, string>,
): APIGatewayProxyEventV2 {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers))
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = query[k] === undefined ? v : `${query[k]},${v}`;
  const now = Date.now();
  return {
    version: '2.0',
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    ...(url.search ? { queryStringParameters: query } : {}),
    ...(Object.keys(pathParameters).length ? { pathParameters } : {}),
    ...(body ? { body } : {}),
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: req.headers.host ?? '127.0.0.1',
      domainPrefix: 'local',
      http: {
        method: req.method ?? 'GET',
        path: url.pathname,
        protocol: 'HTTP/1.1',
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        userAgent: req.headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: new Date(now).toISOString(),
      timeEpoch: now,
    },
  };
}

function send(
  res: http.ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
}

/** Requests and payload bytes of one route, as API Gateway would meter them (the bench prices these). */
export interface RouteStats {
  requests: number;
  requestBytes: number;
  responseBytes: number;
}

/** Requests served by this process's HTTP APIs, by route key (`NOT_FOUND` for unmatched ones). */
export const httpApiRequests: Record<string, RouteStats> = {};

function countRequest(routeKey: string, requestBytes: number): RouteStats {
  const stats = httpApiRequests[routeKey] ?? { requests: 0, requestBytes: 0, responseBytes: 0 };
  httpApiRequests[routeKey] = stats;
  stats.requests++;
  stats.requestBytes += requestBytes;
  return stats;
}

/** A running local HTTP API. */
export interface LocalHttpApi {
  url: string;
  close(): Promise<void>;
}

/** Maximum request body, as API Gateway's 10 MB payload limit. */
const MAX_BODY = 10 * 1024 * 1024;

/** Serves the manifest's routes on 127.0.0.1 (port 0 = any free port). */
export async function startHttpApi(
  opts: {
    port?: number;
    /** Authorizers by route key (API Gateway's JWT authorizer, see local/jwt-authorizer.ts). */
    authorizers?: Readonly<Record<string, Authorize>>;
  } = {},
): Promise<LocalHttpApi> {
  const routes = compileRoutes(ROUTES);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        send(res, 413, JSON.stringify({ message: 'Request Entity Too Large' }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (res.writableEnded) return;
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const hit = matchRoute(routes, req.method ?? 'GET', url.pathname);
      const stats = countRequest(hit?.route.routeKey ?? 'NOT_FOUND', size);
      if (!hit) return send(res, 404, JSON.stringify({ message: 'Not Found' }));
      const event = toEvent(
        req,
        Buffer.concat(chunks).toString('utf8'),
        hit.route.routeKey,
        hit.pathParameters,
      );
      const authorize = opts.authorizers?.[hit.route.routeKey];
      const authorized = authorize
        ? authorize(event.headers).then((claims) => {
            if (!claims) return false;
            // Where API Gateway puts a JWT authorizer's result for the function.
            (event.requestContext as { authorizer?: unknown }).authorizer = { jwt: { claims, scopes: null } };
            return true;
          })
        : Promise.resolve(true);
      authorized
        .then((ok) => {
          if (!ok) throw new Unauthorized();
          return invoke(hit.route.fn, event);
        })
        .then(
          (out) => {
            const r = out as APIGatewayProxyStructuredResultV2 | string | undefined;
            if (r && typeof r === 'object' && typeof r.statusCode === 'number') {
              const headers: Record<string, string> = {};
              for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = String(v);
              const body = typeof r.body === 'string' ? r.body : '';
              stats.responseBytes += Buffer.byteLength(body);
              send(res, r.statusCode, body, headers);
            } else {
              const body = JSON.stringify(r ?? null);
              stats.responseBytes += Buffer.byteLength(body);
              send(res, 200, body);
            }
          },
          (err: unknown) => {
            if (err instanceof Unauthorized)
              return send(res, 401, JSON.stringify({ message: 'Unauthorized' }));
            // API Gateway hides a function's crash behind a generic 500; the function's own log keeps the detail.
            console.error(`[http-api] ${hit.route.routeKey} crashed:`, err);
            send(res, 500, JSON.stringify({ message: 'Internal Server Error' }));
          },
        );
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
