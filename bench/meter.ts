/**
 * Meters what the handlers of this process send to AWS, in the units AWS bills: DynamoDB request units
 * from the sizes of the items actually written and read (tables and GSIs), SQS 64 KiB chunks from the
 * message bodies, plus the request counts of functions/lib/aws.ts, the HTTP API's requests and bytes
 * (local/http-api.ts) and Lambda invocations and durations (local/lambdas.ts).
 *
 * The middlewares sit at the `build` step of the handlers' shared clients: there the request body is
 * the wire JSON (marshalled items, after lib-dynamodb's marshalling) and the output is not yet
 * unmarshalled, so sizes follow DynamoDB's rules on exactly what went over the wire.
 */
import { awsRequests, dynamodb, sqsClient } from '../functions/lib/aws.ts';
import { httpApiRequests, type RouteStats } from '../local/http-api.ts';
import { type InvocationStats, lambdaInvocations } from '../local/lambdas.ts';
import { FUNCTIONS, type FunctionName, TABLE } from '../stacks/manifest.ts';
import {
  type AttributeValue,
  httpApiBilledRequests,
  plainItemBytes,
  readUnits,
  sqsBilledRequests,
  type Usage,
  itemBytes as wireItemBytes,
  writeUnits,
} from './pricing.ts';

type Item = Record<string, AttributeValue>;

const WIRE_TYPES = new Set(['S', 'N', 'B', 'BOOL', 'NULL', 'L', 'M', 'SS', 'NS', 'BS']);

/** True when every attribute is in wire form (`{S: ...}` etc.). */
function isWire(item: Record<string, unknown>): boolean {
  return Object.values(item).every((v) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Set) return false;
    const keys = Object.keys(v);
    return keys.length === 1 && WIRE_TYPES.has(keys[0] as string);
  });
}

/**
 * Item size whether the item is in wire form (request bodies) or already unmarshalled (outputs of
 * the document client, which this SDK version unmarshalls before the build step returns).
 */
function itemBytes(item: Item | Record<string, unknown>): number {
  return isWire(item) ? wireItemBytes(item as Item) : plainItemBytes(item);
}

/** DynamoDB usage by operation. */
export interface DynamoOpUsage {
  calls: number;
  items: number;
  bytes: number;
  wru: number;
  /** WRU of GSI maintenance (per index projection: ALL rewrites the item, KEYS_ONLY only on key changes). */
  indexWru: number;
  rru: number;
}

/** SQS usage by operation. */
export interface SqsOpUsage {
  calls: number;
  payloadBytes: number;
  billed: number;
}

const dynamoOps: Record<string, DynamoOpUsage> = {};
const sqsOps: Record<string, SqsOpUsage> = {};

const GSIS = Object.values(TABLE.indexes).map((i) => ({
  pk: i.partitionKey,
  sk: i.sortKey,
  keysOnly: i.projection === 'KEYS_ONLY',
}));

function dynamoOp(op: string): DynamoOpUsage {
  dynamoOps[op] ??= { calls: 0, items: 0, bytes: 0, wru: 0, indexWru: 0, rru: 0 };
  return dynamoOps[op];
}

/**
 * GSI write units of writing `item`: a new index entry costs one write of the projected size (the whole
 * item for ALL, the keys — one unit — for KEYS_ONLY); an update that changes one of an index's key
 * attributes costs a delete plus a put; an update that changes neither keys nor projected attributes
 * (any non-key update of a KEYS_ONLY index) costs nothing.
 */
function indexWrites(item: Item, changedKeys: ReadonlySet<string> | undefined): number {
  let n = 0;
  for (const gsi of GSIS) {
    const size = gsi.keysOnly ? 1 : writeUnits(itemBytes(item));
    const keyChanged = changedKeys !== undefined && (changedKeys.has(gsi.pk) || changedKeys.has(gsi.sk));
    if (!(gsi.pk in item) || !(gsi.sk in item)) {
      if (keyChanged) n += 1; // entry removed
      continue;
    }
    if (changedKeys === undefined)
      n += size; // a put: a new entry
    else if (keyChanged) n += 2 * size;
    else if (!gsi.keysOnly) n += size;
  }
  return n;
}

/** Attribute names an UpdateExpression touches (through its #placeholders). */
function touched(body: { UpdateExpression?: string; ExpressionAttributeNames?: Record<string, string> }) {
  const names = new Set<string>();
  for (const [ph, name] of Object.entries(body.ExpressionAttributeNames ?? {}))
    if (body.UpdateExpression?.includes(ph)) names.add(name);
  return names;
}

interface DynamoBody {
  Item?: Item;
  ConsistentRead?: boolean;
  IndexName?: string;
  UpdateExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  RequestItems?: Record<
    string,
    { PutRequest?: { Item: Item }; DeleteRequest?: unknown }[] | { Keys: unknown[]; ConsistentRead?: boolean }
  >;
}

interface DynamoOutput {
  Item?: Item;
  Items?: Item[];
  Attributes?: Item;
  Responses?: Record<string, Item[]>;
}

function meterDynamo(op: string, body: DynamoBody, out: DynamoOutput | undefined, failed: boolean): void {
  const u = dynamoOp(op);
  u.calls++;
  switch (op) {
    case 'PutItem': {
      if (!body.Item) break;
      const b = itemBytes(body.Item);
      u.items++;
      u.bytes += b;
      u.wru += writeUnits(b);
      if (!failed) u.indexWru += indexWrites(body.Item, undefined);
      break;
    }
    case 'BatchWriteItem':
      for (const reqs of Object.values(body.RequestItems ?? {})) {
        if (!Array.isArray(reqs)) continue;
        for (const r of reqs) {
          u.items++;
          if (r.PutRequest) {
            const b = itemBytes(r.PutRequest.Item);
            u.bytes += b;
            u.wru += writeUnits(b);
            u.indexWru += indexWrites(r.PutRequest.Item, undefined);
          } else u.wru += 1;
        }
      }
      break;
    case 'UpdateItem': {
      u.items++;
      // A refused conditional write still consumes (at least) one unit; we do not see its size.
      const item = out?.Attributes;
      if (!item || failed) {
        u.wru += 1;
        break;
      }
      const b = itemBytes(item);
      u.bytes += b;
      u.wru += writeUnits(b);
      u.indexWru += indexWrites(item, touched(body));
      break;
    }
    case 'GetItem': {
      u.items++;
      const b = out?.Item ? itemBytes(out.Item) : 0;
      u.bytes += b;
      u.rru += readUnits(b, body.ConsistentRead === true);
      break;
    }
    case 'BatchGetItem':
      for (const [table, req] of Object.entries(body.RequestItems ?? {})) {
        if (Array.isArray(req)) continue;
        const got = out?.Responses?.[table] ?? [];
        u.items += req.Keys.length;
        for (const item of got) {
          const b = itemBytes(item);
          u.bytes += b;
          u.rru += readUnits(b, req.ConsistentRead === true);
        }
        // A key that is not found still costs the minimum read.
        u.rru += Math.max(0, req.Keys.length - got.length) * readUnits(0, req.ConsistentRead === true);
      }
      break;
    case 'Query': {
      const items = out?.Items ?? [];
      const b = items.reduce((n, i) => n + itemBytes(i), 0);
      u.items += items.length;
      u.bytes += b;
      // A Query is billed on the summed size of what it read; GSI queries are eventually consistent.
      u.rru += readUnits(b, body.ConsistentRead === true && body.IndexName === undefined);
      break;
    }
    default:
      break;
  }
}

function meterSqs(op: string, body: Record<string, unknown>, out: Record<string, unknown> | undefined): void {
  sqsOps[op] ??= { calls: 0, payloadBytes: 0, billed: 0 };
  const u = sqsOps[op];
  let bytes = 0;
  if (op === 'SendMessageBatch')
    for (const e of (body.Entries as { MessageBody?: string }[] | undefined) ?? [])
      bytes += Buffer.byteLength(e.MessageBody ?? '');
  else if (op === 'SendMessage') bytes = Buffer.byteLength(String(body.MessageBody ?? ''));
  else if (op === 'ReceiveMessage')
    for (const m of (out?.Messages as { Body?: string }[] | undefined) ?? [])
      bytes += Buffer.byteLength(m.Body ?? '');
  u.calls++;
  u.payloadBytes += bytes;
  u.billed += sqsBilledRequests(bytes);
}

interface Stack {
  middlewareStack: {
    add(
      mw: (
        next: (a: unknown) => Promise<{ output?: unknown }>,
        ctx: { commandName?: string },
      ) => (a: unknown) => Promise<unknown>,
      o: { step: 'build'; name: string },
    ): void;
  };
}

function bodyOf(args: unknown): Record<string, unknown> {
  const body = (args as { request?: { body?: unknown } }).request?.body;
  // JSON protocols hand the serialized body over as a string or as bytes (a Uint8Array adapter).
  const text =
    typeof body === 'string'
      ? body
      : body instanceof Uint8Array
        ? Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')
        : '';
  if (text === '') return {};
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return {};
  }
}

let installed = false;
/** Metering failures (logged once); the report shows the count so a broken meter is visible. */
export let meterErrors = 0;

/** Installs the metering middlewares on the handlers' shared AWS clients (once; after startBackend). */
export function installMeter(): void {
  if (installed) return;
  installed = true;
  const add = (client: unknown, meter: (op: string, body: never, out: never, failed: boolean) => void) => {
    (client as Stack).middlewareStack.add(
      (next, ctx) => async (args) => {
        const op = (ctx.commandName ?? 'Unknown').replace(/Command$/, '');
        const body = bodyOf(args);
        // Metering must never change what the handler sees: its own failures are only logged.
        const safeMeter = (out: unknown, failed: boolean) => {
          try {
            meter(op, body as never, out as never, failed);
          } catch (err) {
            meterErrors++;
            if (meterErrors === 1) console.error(`bench meter: ${op}: ${String(err)}`);
          }
        };
        try {
          const res = await next(args);
          safeMeter(res.output, false);
          return res;
        } catch (err) {
          safeMeter(undefined, true);
          throw err;
        }
      },
      { step: 'build', name: 'sortieBenchMeter' },
    );
  };
  add(dynamodb(), meterDynamo);
  add(sqsClient(), (op, body, out) => meterSqs(op, body, out));
}

/** Everything metered since the last {@link resetMeter}. */
export interface MeterSnapshot {
  awsRequests: Record<string, number>;
  dynamo: Record<string, DynamoOpUsage>;
  sqs: Record<string, SqsOpUsage>;
  http: Record<string, RouteStats>;
  lambda: Partial<Record<FunctionName, InvocationStats>>;
}

/** Zeroes every counter (the handlers' own and the bench's). */
export function resetMeter(): void {
  for (const o of [awsRequests, dynamoOps, sqsOps, httpApiRequests, lambdaInvocations] as Record<
    string,
    unknown
  >[])
    for (const k of Object.keys(o)) delete o[k];
}

/** A deep copy of the counters. */
export function snapshotMeter(): MeterSnapshot {
  return structuredClone({
    awsRequests,
    dynamo: dynamoOps,
    sqs: sqsOps,
    http: httpApiRequests,
    lambda: lambdaInvocations,
  });
}

/**
 * Turns a snapshot into billable usage. HTTP API requests are billed per 512 KiB increment of each
 * request's payload; with only per-route totals we bill max(requests, ceil(bytes / 512 KiB)) per route,
 * exact when every request of a route is below 512 KiB (the SDK's 2,000-unit submits are ~0.3 MB).
 */
export function usageOf(s: MeterSnapshot, sfnTransitions: number): Usage {
  const lambda: Usage['lambda'] = {};
  for (const [fn, st] of Object.entries(s.lambda)) {
    if (!st) continue;
    lambda[fn] = {
      invocations: st.invocations,
      billedMs: st.billedMs,
      memoryMB: FUNCTIONS[fn as FunctionName].memoryMB,
    };
  }
  const routes = Object.values(s.http);
  const requests = routes.reduce((n, r) => n + r.requests, 0);
  const billed = routes.reduce((n, r) => n + Math.max(r.requests, httpApiBilledRequests(r.requestBytes)), 0);
  const ops = Object.values(s.dynamo);
  const sq = Object.values(s.sqs);
  return {
    lambda,
    httpApi: { requests, billed },
    dynamo: {
      calls: ops.reduce((n, o) => n + o.calls, 0),
      wru: ops.reduce((n, o) => n + o.wru + o.indexWru, 0),
      rru: ops.reduce((n, o) => n + o.rru, 0),
    },
    sqs: { calls: sq.reduce((n, o) => n + o.calls, 0), billed: sq.reduce((n, o) => n + o.billed, 0) },
    sfn: { transitions: sfnTransitions },
  };
}
