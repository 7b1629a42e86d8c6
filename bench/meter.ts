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

import {
  chargeDynamo,
  chargeSqs,
  type DynamoBody,
  type DynamoOutput,
  type IndexShape,
  requestBody,
} from '../core/metering.ts';
import { awsRequests, dynamodb, sqsClient } from '../functions/lib/aws.ts';
import { httpApiRequests, type RouteStats } from '../local/http-api.ts';
import { type InvocationStats, lambdaInvocations } from '../local/lambdas.ts';
import { FUNCTIONS, type FunctionName, TABLE } from '../stacks/manifest.ts';
import { httpApiBilledRequests, type Usage } from './pricing.ts';

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

const INDEXES: IndexShape[] = Object.values(TABLE.indexes).map((i) => ({
  pk: i.partitionKey,
  sk: i.sortKey,
  keysOnly: i.projection === 'KEYS_ONLY',
}));

function dynamoOp(op: string): DynamoOpUsage {
  dynamoOps[op] ??= { calls: 0, items: 0, bytes: 0, wru: 0, indexWru: 0, rru: 0 };
  return dynamoOps[op];
}

/** Adds one DynamoDB request's charge (core/metering.ts) to its operation's totals. */
function meterDynamo(op: string, body: DynamoBody, out: DynamoOutput | undefined, failed: boolean): void {
  const u = dynamoOp(op);
  const c = chargeDynamo(op, body, out, failed, INDEXES);
  u.calls++;
  u.items += c.items;
  u.bytes += c.bytes;
  u.wru += c.wru;
  u.indexWru += c.indexWru;
  u.rru += c.rru;
}

function meterSqs(op: string, body: Record<string, unknown>, out: Record<string, unknown> | undefined): void {
  sqsOps[op] ??= { calls: 0, payloadBytes: 0, billed: 0 };
  const u = sqsOps[op];
  const c = chargeSqs(op, body, out);
  u.calls++;
  u.payloadBytes += c.payloadBytes;
  u.billed += c.billed;
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
        const body = requestBody(args);
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
