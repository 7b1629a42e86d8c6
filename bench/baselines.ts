/**
 * The physical baselines the bench sets its figures beside: raw spawns of `/bin/true` from a plain Node
 * loop (in a Node process of its own), a bare `node -e` start, one DynamoDB GetItem round trip and raw
 * BatchWriteItem throughput.
 * Every wait is bounded; every child is waited for.
 */
import { execFile, spawn } from 'node:child_process';
import {
  BatchWriteItemCommand,
  DeleteTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import { createTable } from '../store/schema.ts';
import type { AttributeValue } from './pricing.ts';

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/** Quantile by linear interpolation (p in [0, 1]). */
export function quantile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * p;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (i - lo);
}

/** Rejects after `ms` with `what` in the message; the timer does not hold the process. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * Node's own spawn loop, run in a Node process of its own (figure 1's baseline, figure 9's peer): what a
 * plain Node launcher gets. In the bench's process, whose heap holds an embedded backend, every fork
 * copied that heap's page tables (21 units/s in a full run's figure 9, 4 minutes of it), and the
 * backend in that process answered nothing meanwhile.
 */
const SPAWN_LOOP = `const { spawn } = require('node:child_process');
const n = Number(process.argv[1]), w = Number(process.argv[2]);
let started = 0, done = 0;
const t0 = performance.now();
const next = () => {
  if (started >= n) return;
  started++;
  const c = spawn('/bin/true', [], { stdio: 'ignore' });
  c.once('error', (e) => { console.error(String(e)); process.exit(3); });
  c.once('exit', () => {
    if (++done === n) console.log(n / ((performance.now() - t0) / 1000));
    else next();
  });
};
for (let i = 0; i < Math.min(w, n); i++) next();
`;

/**
 * Spawns `/bin/true` `n` times, `window` at a time (stdio ignored), from a plain Node loop in a Node
 * process of its own, and returns spawns per second.
 */
export function rawSpawnRate(n: number, window: number): Promise<number> {
  return new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      ['-e', SPAWN_LOOP, String(n), String(window)],
      { timeout: 300_000 },
      (err, stdout, stderr) => {
        const rate = Number(stdout.trim());
        if (err || !(rate > 0))
          reject(new Error(`raw spawn loop: ${stderr.trim().slice(-300) || err?.message}`));
        else resolve(rate);
      },
    ),
  );
}

/**
 * Milliseconds from spawning `cmd args` to its first byte of stdout (the process is killed then).
 * This is the floor of any pilot start on this host: a Node process has to come up and print.
 */
export async function firstLineMs(cmd: string, args: string[], cwd?: string): Promise<number> {
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'], ...(cwd ? { cwd } : {}) });
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        child.once('error', reject);
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`${cmd} exited ${code} before printing`)));
      }),
      30_000,
      `first line of ${cmd}`,
    );
    return performance.now() - t0;
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await within(
      new Promise((r) =>
        child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r),
      ),
      10_000,
      `exit of ${cmd}`,
    ).catch(() => {});
  }
}

/** Round trips (ms) of `n` sequential strongly consistent GetItems of one small item on a scratch table. */
export async function getItemRoundTrips(client: DynamoDBClient, table: string, n: number): Promise<number[]> {
  await client.send(new PutItemCommand({ TableName: table, Item: { pk: { S: 'probe' }, v: { S: 'x' } } }));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await client.send(
      new GetItemCommand({ TableName: table, Key: { pk: { S: 'probe' } }, ConsistentRead: true }),
    );
    out.push(performance.now() - t0);
  }
  return out;
}

/**
 * Raw BatchWriteItem throughput (items/s): `items` copies of `sample` (new keys), 25 per request and
 * `concurrency` requests in flight — the same shape as the store's batchPut.
 */
export async function batchWriteRate(
  client: DynamoDBClient,
  table: string,
  sample: Record<string, AttributeValue>,
  items: number,
  concurrency = 8,
): Promise<number> {
  const batches: Record<string, AttributeValue>[][] = [];
  for (let i = 0; i < items; i += 25)
    batches.push(
      Array.from({ length: Math.min(25, items - i) }, (_, j) => ({
        ...sample,
        pk: { S: `scratch#${i + j}` },
      })),
    );
  // Warm-up, untimed: the same writes to other keys (first requests pay for JIT and connections).
  for (let i = 0; i < Math.min(1_000, items); i += 25)
    await client.send(
      new BatchWriteItemCommand({
        RequestItems: {
          [table]: Array.from({ length: 25 }, (_, j) => ({
            PutRequest: { Item: { ...sample, pk: { S: `warm#${i + j}` } } },
          })) as never,
        },
      }),
    );
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < batches.length) {
      let reqs = (batches[next++] ?? []).map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; reqs.length && attempt < 8; attempt++) {
        const out = await client.send(
          new BatchWriteItemCommand({ RequestItems: { [table]: reqs as never } }),
        );
        reqs = (out.UnprocessedItems?.[table] ?? []) as typeof reqs;
      }
    }
  };
  await within(Promise.all(Array.from({ length: concurrency }, worker)), 300_000, 'raw BatchWriteItem');
  return items / ((performance.now() - t0) / 1000);
}

/** Creates a scratch table shaped like Sortie's (store/schema.ts) and returns a function that deletes it. */
export async function scratchTable(client: DynamoDBClient, table: string): Promise<() => Promise<void>> {
  // Sortie's own key schema and indexes: an engine that maintains indexes as it writes (dynalite) pays for
  // them in the baseline too, so the ingest ratio measures Sortie's path, not the indexes' cost.
  await createTable(client, table);
  await waitUntilTableExists({ client, maxWaitTime: 60 }, { TableName: table });
  return async () => {
    await client.send(new DeleteTableCommand({ TableName: table })).catch(() => {});
  };
}
