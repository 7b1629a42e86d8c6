/**
 * Per-session control-plane usage, counted where it happens: every DynamoDB and SQS request a handler
 * makes (sized by core/metering.ts on the wire body and answer), the Lambda invocation itself (billed
 * milliseconds × configured memory), the HTTP API request that carried it (512 KiB metering), and the
 * Step Functions transitions of each pilot's execution (counted once, at the pilot's end).
 *
 * Each invocation counts into its own tally (AsyncLocalStorage: the embedded backend overlaps handlers in
 * one process) and names the session(s) it served ({@link chargeTo}: the token checks, the state machine
 * input, an event's message). When it ends, its tally joins the container's buffer for those sessions;
 * a session's buffer is written to its record (one UpdateItem of ADDs) once it is
 * `SORTIE_USAGE_FLUSH_SECONDS` (default 60) old, when the session is read or closed through this container, or on
 * {@link flushUsage}. Counts of an invocation that served no session (a refused token, the reconciler's
 * scan) are not charged to anyone.
 *
 * What this does not see: the client's own retries that never reached a Lambda, CloudWatch, and the
 * counts a container holds when it is recycled (at most the last `SORTIE_USAGE_FLUSH_SECONDS` (default 60) of its work).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { chargeDynamo, chargeSqs, type IndexShape, requestBody } from '../../core/metering.ts';
import { httpApiBilledRequests } from '../../core/pricing.ts';
import { addUsage, emptyUsage, isEmptyUsage, shareOf, type UsageCounters } from '../../core/usage.ts';
import { ENV, FUNCTIONS, type FunctionName, TABLE } from '../../stacks/manifest.ts';
import { dynamodb, sqsClient } from './aws.ts';
import { logger } from './log.ts';

/** Seconds a container keeps a session's counts before writing them (0: after every invocation). */
const DEFAULT_FLUSH_SECONDS = 60;

/** One invocation's tally and the sessions it served. */
interface Tally {
  usage: UsageCounters;
  sessions: Set<string>;
}

const current = new AsyncLocalStorage<Tally>();

/** The container's unwritten counts per session, and since when each has waited. */
const buffer = new Map<string, { usage: UsageCounters; since: number }>();

/** The store call that writes counts (set by {@link setUsageWriter}; the default is the store's). */
type Writer = (sessionId: string, usage: UsageCounters) => Promise<void>;
let writer: Writer | undefined;

/** Where flushed counts go: `store().addSessionUsage` (set once by the store's adapter, see functions/lib/store.ts). */
export function setUsageWriter(w: Writer): void {
  writer = w;
}

/** Charge the running invocation's usage to `sessionId` (several calls: shared evenly). */
export function chargeTo(sessionId: string | undefined): void {
  if (sessionId) current.getStore()?.sessions.add(sessionId);
}

/** Add counts to the running invocation (e.g. a pilot execution's transitions). */
export function count(usage: Partial<UsageCounters>): void {
  const t = current.getStore();
  if (t) addUsage(t.usage, usage);
}

const INDEXES: IndexShape[] = Object.values(TABLE.indexes).map((i) => ({
  pk: i.partitionKey,
  sk: i.sortKey,
  keysOnly: i.projection === 'KEYS_ONLY',
}));

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
/** Install the counting middlewares on the handlers' shared DynamoDB and SQS clients (once per process). */
function install(): void {
  if (installed) return;
  installed = true;
  const add = (
    client: unknown,
    charge: (op: string, body: Record<string, unknown>, out: unknown, failed: boolean) => void,
  ) =>
    (client as Stack).middlewareStack.add(
      (next, ctx) => async (args) => {
        if (!current.getStore()) return next(args);
        const op = (ctx.commandName ?? 'Unknown').replace(/Command$/, '');
        const body = requestBody(args);
        // Counting must never change what the handler sees: its own failures are only logged.
        const safe = (out: unknown, failed: boolean) => {
          try {
            charge(op, body, out, failed);
          } catch (err) {
            logger.warn('usage not counted', { op, error: err as Error });
          }
        };
        try {
          const res = await next(args);
          safe(res.output, false);
          return res;
        } catch (err) {
          safe(undefined, true);
          throw err;
        }
      },
      { step: 'build', name: 'sortieUsageMeter' },
    );
  add(dynamodb(), (op, body, out, failed) => {
    const c = chargeDynamo(op, body as never, out as never, failed, INDEXES);
    count({ dynamoCalls: 1, dynamoWru: c.wru + c.indexWru, dynamoRru: c.rru });
  });
  add(sqsClient(), (op, body, out) => {
    const c = chargeSqs(op, body, out as Record<string, unknown> | undefined);
    count({ sqsCalls: 1, sqsBilled: c.billed });
  });
}

/** Memory (MB) the running function is billed at: Lambda's own figure, else the manifest's. */
function memoryOf(functionName: string | undefined): number {
  const fromLambda = Number(process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
  if (fromLambda > 0) return fromLambda;
  return FUNCTIONS[functionName as FunctionName]?.memoryMB ?? 512;
}

function flushSeconds(): number {
  const v = Number(process.env[ENV.usageFlushSeconds]);
  return Number.isFinite(v) && v >= 0 ? v : DEFAULT_FLUSH_SECONDS;
}

/** Bytes of an HTTP API event's body and of the handler's answer (what API Gateway meters). */
function httpBytes(event: unknown, result: unknown): number | undefined {
  const e = event as { requestContext?: { http?: unknown }; body?: unknown };
  if (!e?.requestContext?.http) return undefined;
  const len = (v: unknown) => (typeof v === 'string' ? Buffer.byteLength(v) : 0);
  return len(e.body) + len((result as { body?: unknown } | undefined)?.body);
}

/**
 * Run one invocation with its own tally: counts its AWS requests, its duration and (for an HTTP event)
 * its API request; when it ends, buffers the tally for the sessions it served and writes the buffers
 * that are due.
 */
export async function meterInvocation<R>(
  event: unknown,
  functionName: string | undefined,
  run: () => Promise<R>,
): Promise<R> {
  install();
  const tally: Tally = { usage: emptyUsage(), sessions: new Set() };
  const ev = event as { sid?: unknown } | undefined;
  if (typeof ev?.sid === 'string') tally.sessions.add(ev.sid); // a pilot step's input names its session
  const started = performance.now();
  let result: R | undefined;
  try {
    result = await current.run(tally, run);
    return result;
  } finally {
    const ms = Math.max(1, Math.ceil(performance.now() - started));
    addUsage(tally.usage, { lambdaRequests: 1, lambdaMbMs: ms * memoryOf(functionName) });
    const bytes = httpBytes(event, result);
    if (bytes !== undefined)
      addUsage(tally.usage, { httpRequests: 1, httpBilled: httpApiBilledRequests(bytes) });
    keep(tally);
    await flushDue();
  }
}

/** Buffer a finished invocation's tally for the sessions it served. */
function keep(tally: Tally): void {
  if (tally.sessions.size === 0) return;
  const share = shareOf(tally.usage, tally.sessions.size);
  for (const sid of tally.sessions) {
    const b = buffer.get(sid);
    if (b) addUsage(b.usage, share);
    else buffer.set(sid, { usage: addUsage(emptyUsage(), share), since: Date.now() });
  }
}

async function flushDue(): Promise<void> {
  const due = Date.now() - flushSeconds() * 1000;
  const sids = [...buffer].filter(([, b]) => b.since <= due).map(([sid]) => sid);
  if (sids.length) await flushUsage(sids);
}

/**
 * Write the buffered counts of `sessionIds` (default: all) to their records. The writes are counted too
 * (into the buffer, written next time). A failed write puts its counts back; a deleted session's are
 * dropped. Never throws: usage must not fail the request that carried it.
 */
export async function flushUsage(sessionIds?: readonly string[]): Promise<void> {
  if (!writer) return;
  const w = writer;
  for (const sid of sessionIds ?? [...buffer.keys()]) {
    const b = buffer.get(sid);
    if (!b) continue;
    buffer.delete(sid);
    if (isEmptyUsage(b.usage)) continue;
    const tally: Tally = { usage: emptyUsage(), sessions: new Set([sid]) };
    try {
      await current.run(tally, () => w(sid, b.usage));
    } catch (err) {
      if ((err as { code?: string }).code !== 'DoesNotExist') {
        logger.warn('usage not written; kept for the next flush', { sessionId: sid, error: err as Error });
        keepBack(sid, b.usage);
      }
    }
    keepBack(sid, tally.usage);
  }
}

function keepBack(sid: string, usage: UsageCounters): void {
  if (isEmptyUsage(usage)) return;
  const b = buffer.get(sid);
  if (b) addUsage(b.usage, usage);
  else buffer.set(sid, { usage: addUsage(emptyUsage(), usage), since: Date.now() });
}
