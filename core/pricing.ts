/**
 * AWS list prices (us-east-1, no free tier; /work/shared/reference/perf-anchors.md §8) and the pure
 * arithmetic that turns counted requests into dollars: DynamoDB capacity units by item size, SQS 64 KiB
 * chunks, HTTP API 512 KiB increments, Lambda GB-seconds. No I/O here, so test/pricing.test.ts can
 * check every rule with hand-computed numbers. Shared by the bench (bench/pricing.ts re-exports it) and
 * `sortie report` (core/report.ts), so both price at the same list.
 */

/** List prices in USD per single unit (request, GB-s, capacity unit, transition). */
export const PRICES = {
  /** Lambda: $0.20 per 1M requests. */
  lambdaRequest: 0.2 / 1e6,
  /** Lambda duration, arm64: $0.0000133334 per GB-s (x86 would be $0.0000166667). */
  lambdaGbSecondArm64: 0.0000133334,
  /** API Gateway HTTP API: $1.00 per 1M requests (first 300M), metered in 512 KB increments. */
  httpApiRequest: 1.0 / 1e6,
  httpApiMeterBytes: 512 * 1024,
  /** DynamoDB on-demand: $0.625 per 1M write request units (1 KB each). */
  dynamoWru: 0.625 / 1e6,
  /** DynamoDB on-demand: $0.125 per 1M read request units (4 KB strongly consistent, half that eventually). */
  dynamoRru: 0.125 / 1e6,
  dynamoWriteUnitBytes: 1024,
  dynamoReadUnitBytes: 4096,
  /** SQS standard: $0.40 per 1M requests, every 64 KiB chunk of payload billed as one request. */
  sqsRequest: 0.4 / 1e6,
  sqsChunkBytes: 64 * 1024,
  /** Step Functions Standard: $0.025 per 1,000 state transitions. */
  sfnTransition: 0.025 / 1000,
} as const;

/** A DynamoDB attribute value in wire (marshalled) form, as the low-level API sends it. */
export type AttributeValue =
  | { S: string }
  | { N: string }
  | { B: string | Uint8Array }
  | { BOOL: boolean }
  | { NULL: boolean }
  | { L: AttributeValue[] }
  | { M: Record<string, AttributeValue> }
  | { SS: string[] }
  | { NS: string[] }
  | { BS: (string | Uint8Array)[] };

/**
 * UTF-8 length of a string without encoding it (every request is sized, so this runs per attribute of
 * every item the control plane writes; `TextEncoder.encode` allocated a buffer each time). A lone
 * surrogate counts 3 bytes, as the encoder writes U+FFFD for it.
 */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c < 0xdc00 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 2; // a pair: 2 code units, 4 bytes
      i++;
    } else n += 2;
  }
  return n;
}
const utf8 = utf8Length;

/** DynamoDB's size of a number: about one byte per two significant digits, plus one. */
function numberBytes(n: string): number {
  const digits = n.replace(/^-/, '').replace('.', '').replace(/^0+/, '').replace(/e.*$/i, '');
  return Math.ceil(Math.max(1, digits.length) / 2) + 1;
}

function binaryBytes(b: string | Uint8Array): number {
  // On the JSON wire binaries are base64; their size is the decoded length (3 bytes per 4 characters).
  if (typeof b !== 'string') return b.length;
  const clean = b.replace(/[^A-Za-z0-9+/]/g, '');
  return Math.floor((clean.length * 3) / 4);
}

/**
 * Size of one attribute value by DynamoDB's item-size rules: strings by UTF-8 length, numbers by
 * digits, containers 3 bytes plus 1 per element plus their contents (map keys count as names).
 */
export function attributeValueBytes(v: AttributeValue): number {
  if ('S' in v) return utf8(v.S);
  if ('N' in v) return numberBytes(v.N);
  if ('B' in v) return binaryBytes(v.B);
  if ('BOOL' in v || 'NULL' in v) return 1;
  if ('L' in v) return 3 + v.L.reduce((n, e) => n + 1 + attributeValueBytes(e), 0);
  if ('M' in v)
    return 3 + Object.entries(v.M).reduce((n, [k, e]) => n + 1 + utf8(k) + attributeValueBytes(e), 0);
  if ('SS' in v) return v.SS.reduce((n, s) => n + utf8(s), 0);
  if ('NS' in v) return v.NS.reduce((n, s) => n + numberBytes(s), 0);
  return v.BS.reduce((n, b) => n + binaryBytes(b), 0);
}

/** Size of an item: the sum of its attribute names and values. */
export function itemBytes(item: Record<string, AttributeValue>): number {
  return Object.entries(item).reduce((n, [k, v]) => n + utf8(k) + attributeValueBytes(v), 0);
}

/**
 * Size of a plain (unmarshalled, lib-dynamodb) value by the same rules: strings, numbers, booleans and
 * null, arrays as lists, Sets as string/number sets, binaries, and objects as maps.
 */
export function plainValueBytes(v: unknown): number {
  if (typeof v === 'string') return utf8(v);
  if (typeof v === 'number' || typeof v === 'bigint') return numberBytes(String(v));
  if (typeof v === 'boolean' || v === null || v === undefined) return 1;
  if (v instanceof Uint8Array) return v.length;
  if (v instanceof Set) return [...v].reduce((n: number, e) => n + plainValueBytes(e), 0);
  if (Array.isArray(v)) return 3 + v.reduce((n: number, e) => n + 1 + plainValueBytes(e), 0);
  if (typeof v === 'object')
    return 3 + Object.entries(v).reduce((n, [k, e]) => n + 1 + utf8(k) + plainValueBytes(e), 0);
  return 0;
}

/** Size of a plain (unmarshalled) item: the sum of its attribute names and values. */
export function plainItemBytes(item: Record<string, unknown>): number {
  return Object.entries(item).reduce((n, [k, v]) => n + utf8(k) + plainValueBytes(v), 0);
}

/** Write request units of one item write: 1 per started KB, at least 1. */
export function writeUnits(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / PRICES.dynamoWriteUnitBytes));
}

/** Read request units of reading `bytes` (one item, or a Query's summed page): 1 per started 4 KB, half if eventually consistent. */
export function readUnits(bytes: number, consistent: boolean): number {
  const units = Math.max(1, Math.ceil(bytes / PRICES.dynamoReadUnitBytes));
  return consistent ? units : units / 2;
}

/** Billed SQS requests of one call with `payloadBytes` of message bodies: one per started 64 KiB chunk. */
export function sqsBilledRequests(payloadBytes: number): number {
  return Math.max(1, Math.ceil(payloadBytes / PRICES.sqsChunkBytes));
}

/** Billed HTTP API requests of one call with a payload of `bytes`: one per started 512 KiB increment. */
export function httpApiBilledRequests(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / PRICES.httpApiMeterBytes));
}

/** GB-seconds of `billedMs` milliseconds at `memoryMB`. */
export function gbSeconds(billedMs: number, memoryMB: number): number {
  return (billedMs / 1000) * (memoryMB / 1024);
}

/** Counted usage of one measured run. */
export interface Usage {
  /** Per function: invocations, billed milliseconds, configured memory. */
  lambda: Record<string, { invocations: number; billedMs: number; memoryMB: number }>;
  /** HTTP API requests made and billed (after 512 KiB metering). */
  httpApi: { requests: number; billed: number };
  /** DynamoDB calls, and the request units they consume (tables and GSIs). */
  dynamo: { calls: number; wru: number; rru: number };
  /** SQS calls and billed requests (after 64 KiB chunking). */
  sqs: { calls: number; billed: number };
  /** Step Functions Standard state transitions. */
  sfn: { transitions: number };
}

/** One priced line of a {@link CostBreakdown}. */
export interface CostLine {
  item: string;
  /** Billed quantity (requests, GB-s, WRU, …) per unit of work. */
  perUnit: number;
  quantityName: string;
  usd: number;
  usdPerMillionUnits: number;
}

/** What a run cost, line by line, for `units` units of work. */
export interface CostBreakdown {
  units: number;
  lines: CostLine[];
  usd: number;
  usdPerMillionUnits: number;
  /** The line with the largest cost. */
  dominant: string;
}

/** Prices `usage` at {@link PRICES} and scales it to one million units of work. */
export function priceUsage(usage: Usage, units: number): CostBreakdown {
  if (!(units > 0)) throw new Error(`priceUsage: units must be positive, got ${units}`);
  const fns = Object.values(usage.lambda);
  const invocations = fns.reduce((n, f) => n + f.invocations, 0);
  const gbs = fns.reduce((n, f) => n + gbSeconds(f.billedMs, f.memoryMB), 0);
  const raw: [string, number, string, number][] = [
    ['Lambda requests', invocations, 'invocations', invocations * PRICES.lambdaRequest],
    ['Lambda duration (arm64)', gbs, 'GB-s', gbs * PRICES.lambdaGbSecondArm64],
    [
      'API Gateway HTTP API',
      usage.httpApi.billed,
      'billed requests',
      usage.httpApi.billed * PRICES.httpApiRequest,
    ],
    ['DynamoDB writes', usage.dynamo.wru, 'WRU', usage.dynamo.wru * PRICES.dynamoWru],
    ['DynamoDB reads', usage.dynamo.rru, 'RRU', usage.dynamo.rru * PRICES.dynamoRru],
    ['SQS', usage.sqs.billed, 'billed requests', usage.sqs.billed * PRICES.sqsRequest],
    ['Step Functions', usage.sfn.transitions, 'transitions', usage.sfn.transitions * PRICES.sfnTransition],
  ];
  const lines = raw.map(([item, quantity, quantityName, usd]) => ({
    item,
    perUnit: quantity / units,
    quantityName,
    usd,
    usdPerMillionUnits: (usd / units) * 1e6,
  }));
  const usd = lines.reduce((n, l) => n + l.usd, 0);
  const dominant = lines.reduce((a, b) => (b.usd > a.usd ? b : a)).item;
  return { units, lines, usd, usdPerMillionUnits: (usd / units) * 1e6, dominant };
}
