/** The bench's pricing arithmetic (bench/pricing.ts): size rules, metering increments and list prices. */
import { describe, expect, it } from 'vitest';
import {
  gbSeconds,
  httpApiBilledRequests,
  itemBytes,
  PRICES,
  plainItemBytes,
  plainValueBytes,
  priceUsage,
  readUnits,
  sqsBilledRequests,
  utf8Length,
  writeUnits,
} from '../bench/pricing.ts';

describe('DynamoDB item size and request units', () => {
  it('counts UTF-8 bytes without encoding: ASCII, 2- and 3-byte characters, pairs and lone surrogates', () => {
    const samples = [
      '',
      'unit.000001',
      'é',
      'Ωmega',
      '€uro',
      '日本語',
      '😀x',
      'a\ud800b',
      '\udc00',
      'z\ud83d',
    ];
    for (const s of samples)
      expect(utf8Length(s), JSON.stringify(s)).toBe(new TextEncoder().encode(s).length);
  });

  it('sums names and values by the documented rules', () => {
    // pk(2) + 'abc'(3) = 5; n(1) + 12345 → 3 digits-pairs + 1 = 4 → 5; ok(2) + BOOL 1 = 3
    expect(itemBytes({ pk: { S: 'abc' }, n: { N: '12345' }, ok: { BOOL: true } })).toBe(13);
    // l(1) + list: 3 + (1 + 1) + (1 + 2) = 8 → 9; m(1) + map: 3 + (1 + 'k'(1) + 'vv'(2)) = 7 → 8
    expect(itemBytes({ l: { L: [{ S: 'a' }, { S: 'bb' }] }, m: { M: { k: { S: 'vv' } } } })).toBe(17);
  });

  it('bills writes per started KB and reads per started 4 KB, halved when eventually consistent', () => {
    expect(writeUnits(0)).toBe(1);
    expect(writeUnits(1024)).toBe(1);
    expect(writeUnits(1025)).toBe(2);
    expect(readUnits(4096, true)).toBe(1);
    expect(readUnits(4097, true)).toBe(2);
    expect(readUnits(4097, false)).toBe(1);
    expect(readUnits(10, false)).toBe(0.5);
  });
});

describe('metering increments', () => {
  it('SQS bills every started 64 KiB chunk, HTTP API every started 512 KiB', () => {
    expect(sqsBilledRequests(0)).toBe(1);
    expect(sqsBilledRequests(64 * 1024)).toBe(1);
    expect(sqsBilledRequests(64 * 1024 + 1)).toBe(2);
    expect(sqsBilledRequests(256 * 1024)).toBe(4);
    expect(httpApiBilledRequests(100)).toBe(1);
    expect(httpApiBilledRequests(1024 * 1024)).toBe(2);
    expect(httpApiBilledRequests(1024 * 1024 + 1)).toBe(3);
  });

  it('Lambda GB-s is seconds times GB of configured memory', () => {
    expect(gbSeconds(1000, 1024)).toBe(1);
    expect(gbSeconds(100, 128)).toBeCloseTo(0.0125, 12);
  });
});

describe('priceUsage', () => {
  it('reproduces the reference naive-invocation price and scales to a million units', () => {
    // perf-anchors §9: 128 MB × 100 ms on arm64 plus the request ≈ $0.3667 per 1M invocations.
    const oneInvocation = priceUsage(
      {
        lambda: { f: { invocations: 1, billedMs: 100, memoryMB: 128 } },
        httpApi: { requests: 0, billed: 0 },
        dynamo: { calls: 0, wru: 0, rru: 0 },
        sqs: { calls: 0, billed: 0 },
        sfn: { transitions: 0 },
      },
      1,
    );
    expect(oneInvocation.usdPerMillionUnits).toBeCloseTo(0.3667, 4);
  });

  it('prices each service at its list price and names the dominant line', () => {
    const b = priceUsage(
      {
        lambda: {},
        httpApi: { requests: 10, billed: 10 },
        dynamo: { calls: 5, wru: 2_000, rru: 1_000 },
        sqs: { calls: 3, billed: 5 },
        sfn: { transitions: 6 },
      },
      1_000,
    );
    const usd = (item: string) => b.lines.find((l) => l.item === item)?.usd ?? Number.NaN;
    expect(usd('API Gateway HTTP API')).toBeCloseTo(10 * PRICES.httpApiRequest, 15);
    expect(usd('DynamoDB writes')).toBeCloseTo(2_000 * 0.625e-6, 15);
    expect(usd('DynamoDB reads')).toBeCloseTo(1_000 * 0.125e-6, 15);
    expect(usd('SQS')).toBeCloseTo(5 * 0.4e-6, 15);
    expect(usd('Step Functions')).toBeCloseTo(6 * 0.000025, 15);
    expect(b.dominant).toBe('DynamoDB writes');
    // 1e-5 + 1.25e-3 + 1.25e-4 + 2e-6 + 1.5e-4 = 1.537e-3 USD for 1,000 units → $1.537 per 1M.
    expect(b.usdPerMillionUnits).toBeCloseTo(1.537, 9);
    expect(() => priceUsage(b as never, 0)).toThrow(/units must be positive/);
  });
});

describe('item size of every attribute type', () => {
  it('binaries by decoded length, sets by their members, null and booleans by one byte', () => {
    // b(1) + base64 'AAEC' = 3 bytes; u(1) + raw 5 bytes; z(1) + NULL 1
    expect(itemBytes({ b: { B: 'AAEC' }, u: { B: new Uint8Array(5) }, z: { NULL: true } })).toBe(12);
    // s(1) + 'ab' + 'c' = 3; n(1) + '10'(2) + '-1.5'(2 digits → 2) = 4; x(1) + 'AA=='(1) + 2 bytes
    expect(
      itemBytes({
        s: { SS: ['ab', 'c'] },
        n: { NS: ['10', '-1.5'] },
        x: { BS: ['AA==', new Uint8Array(2)] },
      }),
    ).toBe(4 + 5 + 4);
  });

  it('plain values by the same rules as their marshalled form', () => {
    const plain = {
      s: 'abc',
      n: 12345,
      b: false,
      z: null,
      u: new Uint8Array(4),
      set: new Set(['a', 'bb']),
      l: ['a'],
      m: { k: 'vv' },
    };
    const wire = {
      s: { S: 'abc' },
      n: { N: '12345' },
      b: { BOOL: false },
      z: { NULL: true },
      u: { B: new Uint8Array(4) },
      set: { SS: ['a', 'bb'] },
      l: { L: [{ S: 'a' }] },
      m: { M: { k: { S: 'vv' } } },
    };
    expect(plainItemBytes(plain)).toBe(itemBytes(wire));
    expect(plainValueBytes(10n)).toBe(2);
    expect(plainValueBytes(undefined)).toBe(1);
    expect(plainValueBytes(() => 1)).toBe(0);
  });

  it('refuses to price zero units of work', () => {
    expect(() =>
      priceUsage(
        {
          lambda: {},
          httpApi: { requests: 0, billed: 0 },
          dynamo: { calls: 0, wru: 0, rru: 0 },
          sqs: { calls: 0, billed: 0 },
          sfn: { transitions: 0 },
        },
        0,
      ),
    ).toThrow(/units must be positive/);
  });
});
