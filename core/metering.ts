/**
 * What one AWS request costs in the units AWS bills, from the request and its answer as they went over
 * the wire: DynamoDB request units by the sizes of the items written and read (table and GSIs), SQS
 * requests by 64 KiB chunks of message bodies. Pure, so the bench's meter (bench/meter.ts) and the
 * per-session usage counters of every Lambda (functions/lib/usage.ts) bill the same way, and
 * test/metering.test.ts checks the rules on hand-made requests.
 *
 * Sizes, not the `ConsumedCapacity` DynamoDB can return: the local engines report it for the table only
 * (no GSI maintenance), so the same code would undercount here what it counts right in AWS.
 */
import {
  type AttributeValue,
  plainItemBytes,
  readUnits,
  sqsBilledRequests,
  utf8Length,
  itemBytes as wireItemBytes,
  writeUnits,
} from './pricing.ts';

type Item = Record<string, AttributeValue>;

const WIRE_TYPES: readonly string[] = ['S', 'N', 'B', 'BOOL', 'NULL', 'L', 'M', 'SS', 'NS', 'BS'];

/** True when every attribute is in wire form (`{S: ...}` etc.). */
function isWire(item: Record<string, unknown>): boolean {
  return Object.values(item).every((v) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Set) return false;
    const keys = Object.keys(v);
    return keys.length === 1 && WIRE_TYPES.includes(keys[0] as string);
  });
}

/**
 * Item size whether the item is in wire form (request bodies) or already unmarshalled (outputs of the
 * document client, which unmarshalls before the build step returns).
 */
export function anyItemBytes(item: Item | Record<string, unknown>): number {
  return isWire(item) ? wireItemBytes(item as Item) : plainItemBytes(item);
}

/** A global secondary index as the meter sees it: its keys and whether it projects only them. */
export interface IndexShape {
  pk: string;
  sk: string;
  keysOnly: boolean;
}

/** What one DynamoDB request consumed. */
export interface DynamoCharge {
  items: number;
  bytes: number;
  /** Write units on the table. */
  wru: number;
  /** Write units of GSI maintenance. */
  indexWru: number;
  rru: number;
}

/**
 * GSI write units of writing `item`: a new index entry costs one write of the projected size (the whole
 * item for ALL, the keys — one unit — for KEYS_ONLY); an update that changes one of an index's key
 * attributes costs a delete plus a put; an update that changes neither keys nor projected attributes
 * (any non-key update of a KEYS_ONLY index) costs nothing. `changedKeys` undefined: a put.
 */
export function indexWrites(
  item: Item | Record<string, unknown>,
  changedKeys: ReadonlySet<string> | undefined,
  indexes: readonly IndexShape[],
): number {
  let n = 0;
  for (const gsi of indexes) {
    const size = gsi.keysOnly ? 1 : writeUnits(anyItemBytes(item));
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
export function touchedNames(body: {
  UpdateExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
}): Set<string> {
  const names = new Set<string>();
  for (const [ph, name] of Object.entries(body.ExpressionAttributeNames ?? {}))
    if (body.UpdateExpression?.includes(ph)) names.add(name);
  return names;
}

/** The request fields the DynamoDB meter reads. */
export interface DynamoBody {
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

/** The answer fields the DynamoDB meter reads. */
export interface DynamoOutput {
  Item?: Item;
  Items?: Item[];
  Attributes?: Item;
  Responses?: Record<string, Item[]>;
}

/**
 * What one DynamoDB request consumed. A refused conditional write still consumes at least one unit (its
 * size is not seen); an update's size is that of the item it returns (`ReturnValues: ALL_NEW`), else one
 * unit. Operations not listed (DeleteItem, Scan, transactions: Sortie's handlers use none on hot paths)
 * count one write unit or nothing.
 */
export function chargeDynamo(
  op: string,
  body: DynamoBody,
  out: DynamoOutput | undefined,
  failed: boolean,
  indexes: readonly IndexShape[],
): DynamoCharge {
  const c: DynamoCharge = { items: 0, bytes: 0, wru: 0, indexWru: 0, rru: 0 };
  switch (op) {
    case 'PutItem': {
      if (!body.Item) break;
      const b = anyItemBytes(body.Item);
      c.items++;
      c.bytes += b;
      c.wru += writeUnits(b);
      if (!failed) c.indexWru += indexWrites(body.Item, undefined, indexes);
      break;
    }
    case 'BatchWriteItem':
      for (const reqs of Object.values(body.RequestItems ?? {})) {
        if (!Array.isArray(reqs)) continue;
        for (const r of reqs) {
          c.items++;
          if (r.PutRequest) {
            const b = anyItemBytes(r.PutRequest.Item);
            c.bytes += b;
            c.wru += writeUnits(b);
            c.indexWru += indexWrites(r.PutRequest.Item, undefined, indexes);
          } else c.wru += 1;
        }
      }
      break;
    case 'UpdateItem': {
      c.items++;
      const item = out?.Attributes;
      if (!item || failed) {
        c.wru += 1;
        break;
      }
      const b = anyItemBytes(item);
      c.bytes += b;
      c.wru += writeUnits(b);
      c.indexWru += indexWrites(item, touchedNames(body), indexes);
      break;
    }
    case 'DeleteItem':
      c.items++;
      c.wru += 1;
      break;
    case 'GetItem': {
      c.items++;
      const b = out?.Item ? anyItemBytes(out.Item) : 0;
      c.bytes += b;
      c.rru += readUnits(b, body.ConsistentRead === true);
      break;
    }
    case 'BatchGetItem':
      for (const [table, req] of Object.entries(body.RequestItems ?? {})) {
        if (Array.isArray(req)) continue;
        const got = out?.Responses?.[table] ?? [];
        c.items += req.Keys.length;
        for (const item of got) {
          const b = anyItemBytes(item);
          c.bytes += b;
          c.rru += readUnits(b, req.ConsistentRead === true);
        }
        // A key that is not found still costs the minimum read.
        c.rru += Math.max(0, req.Keys.length - got.length) * readUnits(0, req.ConsistentRead === true);
      }
      break;
    case 'Query': {
      const items = out?.Items ?? [];
      const b = items.reduce((n, i) => n + anyItemBytes(i), 0);
      c.items += items.length;
      c.bytes += b;
      // A Query is billed on the summed size of what it read; GSI queries are eventually consistent.
      c.rru += readUnits(b, body.ConsistentRead === true && body.IndexName === undefined);
      break;
    }
    default:
      break;
  }
  return c;
}

/** What one SQS request carried and is billed as. */
export interface SqsCharge {
  payloadBytes: number;
  billed: number;
}

/** Bytes of message bodies sent or received by one SQS request, and its billed requests (64 KiB chunks). */
export function chargeSqs(
  op: string,
  body: Record<string, unknown>,
  out: Record<string, unknown> | undefined,
): SqsCharge {
  let bytes = 0;
  if (op === 'SendMessageBatch')
    for (const e of (body.Entries as { MessageBody?: string }[] | undefined) ?? [])
      bytes += utf8Length(e.MessageBody ?? '');
  else if (op === 'SendMessage') bytes = utf8Length(String(body.MessageBody ?? ''));
  else if (op === 'ReceiveMessage')
    for (const m of (out?.Messages as { Body?: string }[] | undefined) ?? [])
      bytes += utf8Length(m.Body ?? '');
  return { payloadBytes: bytes, billed: sqsBilledRequests(bytes) };
}

/**
 * The JSON body of a request at the SDK's build step: JSON protocols hand it over as a string or as
 * bytes; anything else (or unparsable) is an empty body.
 */
export function requestBody(args: unknown): Record<string, unknown> {
  const body = (args as { request?: { body?: unknown } }).request?.body;
  const text =
    typeof body === 'string' ? body : body instanceof Uint8Array ? new TextDecoder().decode(body) : '';
  if (text === '') return {};
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
