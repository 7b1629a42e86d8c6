/** core/metering.ts and core/usage.ts on hand-made requests: what one request is billed, and the session counters. */
import { describe, expect, it } from 'vitest';
import { chargeDynamo, chargeSqs, indexWrites, requestBody, touchedNames } from '../core/metering.ts';
import { writeUnits } from '../core/pricing.ts';
import {
  addUsage,
  emptyUsage,
  isEmptyUsage,
  lambdaGbSeconds,
  priceCounters,
  shareOf,
  USAGE_COUNTERS,
  usageOfCounters,
} from '../core/usage.ts';

const ALL = { pk: 'parent', sk: 'changed', keysOnly: false };
const KEYS = { pk: 'pilotKey', sk: 'uid', keysOnly: true };
const big = 'x'.repeat(1500); // an item over 1 KB: 2 write units

describe('DynamoDB charges', () => {
  it('a put writes the item on the table and a new entry in every index whose keys it has', () => {
    const Item = { pk: { S: 's' }, parent: { S: 'p' }, changed: { S: 'c' }, d: { S: big } };
    const c = chargeDynamo('PutItem', { Item }, undefined, false, [ALL, KEYS]);
    expect(c).toMatchObject({ items: 1, wru: 2, indexWru: 2, rru: 0 });
    // Refused by its condition: the table write is billed, no index entry is made.
    expect(chargeDynamo('PutItem', { Item }, undefined, true, [ALL]).indexWru).toBe(0);
    expect(chargeDynamo('PutItem', {}, undefined, false, [ALL]).items).toBe(0);
  });

  it('an update is billed at the new item size; index entries by which keys it changed', () => {
    const item = { pk: 's', parent: 'p', changed: 'c', pilotKey: 'k', uid: 'u', d: big };
    const body = {
      UpdateExpression: 'SET #c = :c, #d = :d',
      ExpressionAttributeNames: { '#c': 'changed', '#d': 'd' },
    };
    expect(touchedNames(body)).toEqual(new Set(['changed', 'd']));
    // ALL index: its sort key changed → delete + put of 2 units each; KEYS_ONLY: untouched → nothing.
    const c = chargeDynamo('UpdateItem', body, { Attributes: item as never }, false, [ALL, KEYS]);
    expect(c).toMatchObject({ wru: 2, indexWru: 4 });
    // Neither key touched: the ALL projection is rewritten, KEYS_ONLY is not.
    expect(indexWrites(item, new Set(['d']), [ALL, KEYS])).toBe(2);
    // A key removed (the item leaves the index): one delete.
    expect(indexWrites({ pk: 's', parent: 'p' }, new Set(['pilotKey']), [KEYS])).toBe(1);
    // Refused or without returned values: one unit, size unseen.
    expect(chargeDynamo('UpdateItem', body, undefined, true, [ALL])).toMatchObject({ wru: 1, indexWru: 0 });
    expect(chargeDynamo('DeleteItem', {}, undefined, false, [ALL]).wru).toBe(1);
  });

  it('batch writes per item; reads per 4 KB, halved when eventually consistent; misses cost the minimum', () => {
    const put = { PutRequest: { Item: { pk: { S: 'a' }, d: { S: big } } } };
    const w = chargeDynamo(
      'BatchWriteItem',
      { RequestItems: { t: [put, { DeleteRequest: {} }] } },
      undefined,
      false,
      [],
    );
    expect(w).toMatchObject({ items: 2, wru: writeUnits(1502 + 1) + 1 });
    const got = { Item: { pk: { S: 'a' } } };
    expect(chargeDynamo('GetItem', { ConsistentRead: true }, got, false, []).rru).toBe(1);
    expect(chargeDynamo('GetItem', {}, undefined, false, []).rru).toBe(0.5);
    const bg = chargeDynamo(
      'BatchGetItem',
      { RequestItems: { t: { Keys: [{}, {}, {}], ConsistentRead: true } } },
      { Responses: { t: [{ pk: { S: 'a' } }] } },
      false,
      [],
    );
    expect(bg).toMatchObject({ items: 3, rru: 3 });
    const items = Array.from({ length: 3 }, () => ({ d: { S: big } }));
    expect(chargeDynamo('Query', { ConsistentRead: true }, { Items: items }, false, []).rru).toBe(2);
    expect(
      chargeDynamo('Query', { ConsistentRead: true, IndexName: 'byParent' }, { Items: items }, false, []).rru,
    ).toBe(1);
    expect(chargeDynamo('Scan', {}, undefined, false, [])).toMatchObject({ wru: 0, rru: 0 });
  });
});

describe('SQS charges and request bodies', () => {
  it('bills every started 64 KiB of message bodies, sent or received', () => {
    expect(chargeSqs('SendMessage', { MessageBody: 'é' }, undefined)).toEqual({ payloadBytes: 2, billed: 1 });
    const entries = [{ MessageBody: 'x'.repeat(40_000) }, { MessageBody: 'x'.repeat(40_000) }];
    expect(chargeSqs('SendMessageBatch', { Entries: entries }, undefined)).toEqual({
      payloadBytes: 80_000,
      billed: 2,
    });
    expect(chargeSqs('ReceiveMessage', {}, { Messages: [{ Body: 'abc' }, {}] })).toEqual({
      payloadBytes: 3,
      billed: 1,
    });
    expect(chargeSqs('DeleteMessageBatch', {}, undefined)).toEqual({ payloadBytes: 0, billed: 1 });
  });

  it('reads the JSON body as a string or bytes; anything else is empty', () => {
    expect(requestBody({ request: { body: '{"a":1}' } })).toEqual({ a: 1 });
    expect(requestBody({ request: { body: new TextEncoder().encode('{"b":2}') } })).toEqual({ b: 2 });
    expect(requestBody({ request: { body: 'not json' } })).toEqual({});
    expect(requestBody({ request: { body: '[1]' } })).toEqual({});
    expect(requestBody({})).toEqual({});
  });
});

describe('session usage counters', () => {
  it('add, share, price', () => {
    const u = addUsage(emptyUsage(), {
      lambdaRequests: 2,
      lambdaMbMs: 2 * 1024 * 1000,
      dynamoWru: 8,
      sfnTransitions: 4,
    });
    expect(isEmptyUsage(emptyUsage())).toBe(true);
    expect(isEmptyUsage(u)).toBe(false);
    expect(lambdaGbSeconds(u)).toBe(2);
    expect(shareOf(u, 2)).toMatchObject({ lambdaRequests: 1, dynamoWru: 4, sfnTransitions: 2 });
    expect(() => shareOf(u, 0)).toThrow(/at least 1/);
    expect(Object.keys(emptyUsage())).toEqual(USAGE_COUNTERS);
    expect(usageOfCounters(u).lambda.all).toEqual({ invocations: 2, billedMs: 2000, memoryMB: 1024 });
    const cost = priceCounters(u, 4);
    expect(cost?.usd).toBeCloseTo(2 * 0.2e-6 + 2 * 0.0000133334 + 8 * 0.625e-6 + 4 * 0.000025, 12);
    expect(priceCounters(u, 0)).toBeUndefined();
  });
});
