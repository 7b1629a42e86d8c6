/** The pure parts of TRANSFER (core/transfer.ts): limits, part plans, keys and the checks of requests. */
import { describe, expect, it } from 'vitest';
import { BadParameter } from '../core/errors.ts';
import {
  inputKey,
  inputObjectProblem,
  MAX_TRANSFER_BYTES,
  outputKey,
  PART_BYTES,
  parseOutputKey,
  partPlan,
  sessionPrefix,
  sizeProblem,
  validParts,
} from '../core/transfer.ts';

const SHA = 'c'.repeat(64);
const UUID = '0f8fad5b-d9cb-469f-a165-70867728950e';

describe('TRANSFER rules', () => {
  it('plans one part up to the part size, then parts of it that cover the file exactly', () => {
    expect(partPlan(0)).toEqual([{ number: 1, start: 0, end: 0 }]);
    expect(partPlan(PART_BYTES)).toEqual([{ number: 1, start: 0, end: PART_BYTES }]);
    const parts = partPlan(2 * PART_BYTES + 5);
    expect(parts.map((p) => p.number)).toEqual([1, 2, 3]);
    expect(parts.at(-1)).toEqual({ number: 3, start: 2 * PART_BYTES, end: 2 * PART_BYTES + 5 });
    expect(parts.reduce((n, p) => n + p.end - p.start, 0)).toBe(2 * PART_BYTES + 5);
    expect(partPlan(MAX_TRANSFER_BYTES)).toHaveLength(1280);
  });

  it("names keys under the session's prefix and reads an output key back", () => {
    expect(inputKey('s1', UUID)).toBe(`s1/in/${UUID}`);
    expect(outputKey('s1', 'unit.000007', 2)).toBe('s1/out/unit.000007/2');
    expect(sessionPrefix('s1')).toBe('s1/');
    expect(parseOutputKey('s1/out/unit.000007/2', 's1')).toEqual({ uid: 'unit.000007', index: 2 });
    for (const bad of [
      's2/out/unit.1/0',
      's1/out/unit.1',
      's1/out/unit.1/x',
      's1/out/unit.1/0/more',
      's1/out//0',
    ])
      expect(parseOutputKey(bad, 's1'), bad).toBeUndefined();
  });

  it('checks sizes and checksums, naming the field and the value', () => {
    expect(sizeProblem(10, SHA, 'transfers')).toBeUndefined();
    expect(sizeProblem(-1, SHA, 'transfers')).toBe('transfers.size: must be a whole number of bytes, got -1');
    expect(sizeProblem(1.5, SHA, 'x')).toContain('x.size');
    expect(sizeProblem(MAX_TRANSFER_BYTES + 1, SHA, 'x')).toContain('above the transfer limit');
    expect(sizeProblem(1, 'ABC', 'x')).toBe('x.sha256: must be 64 lower-case hex digits, got "ABC"');
  });

  it("accepts only this session's upload keys as a Transfer input's object", () => {
    const ok = { key: `s1/in/${UUID}`, size: 3, sha256: SHA };
    expect(inputObjectProblem(ok, 's1', 'd')).toBeUndefined();
    expect(inputObjectProblem(undefined, 's1', 'd')).toContain(
      'd.object: a Transfer input must name the object',
    );
    expect(inputObjectProblem({ ...ok, key: `s2/in/${UUID}` }, 's1', 'd')).toContain('d.object.key');
    expect(inputObjectProblem({ ...ok, key: 's1/in/../x' }, 's1', 'd')).toContain('d.object.key');
    expect(inputObjectProblem({ ...ok, size: -2 }, 's1', 'd')).toContain('d.object.size');
  });

  it('takes the parts of a multipart upload in order, each with an ETag', () => {
    expect(validParts([{ number: 1, etag: '"a"' }], 1, 't')).toEqual([{ number: 1, etag: '"a"' }]);
    expect(() => validParts('x', 1, 't')).toThrow(BadParameter);
    expect(() => validParts([{ number: 2, etag: '"a"' }], 1, 't')).toThrow(
      't.parts[0]: must be { number: 1, etag }',
    );
    expect(() => validParts([{ number: 1, etag: '' }], 1, 't')).toThrow(BadParameter);
  });
});

describe('pilot staging directives (client/pilot-staging.ts)', () => {
  it('puts relative resource paths in the staging area and names a bad directive', async () => {
    const { pilotDirectives } = await import('../client/pilot-staging.ts');
    const [i] = pilotDirectives('a.txt', 'in', 'p stageIn');
    expect(i).toMatchObject({ source: 'a.txt', target: 'staging:///a.txt', action: 'Transfer' });
    const [o] = pilotDirectives(
      [{ source: 'r.txt', target: '/tmp/r.txt', action: 'Copy' }],
      'out',
      'p stageOut',
    );
    expect(o).toMatchObject({ source: 'staging:///r.txt', target: '/tmp/r.txt' });
    const two = pilotDirectives({ source: ['x', '/abs/y'], target: ['staging:///x', 'y'] }, 'in', 'w');
    expect(two.map((d) => d.target)).toEqual(['staging:///x', 'staging:///y']);
    expect(() => pilotDirectives([], 'in', 'w')).toThrow('w: no directives given');
    expect(() => pilotDirectives(['a >> b'], 'in', 'w')).toThrow(BadParameter);
    expect(() => pilotDirectives([{ source: 'a', action: 'Fly' }], 'in', 'w')).toThrow('w[0].action');
    expect(() => pilotDirectives([{ source: ['a'], target: ['b', 'c'] }], 'in', 'w')).toThrow(
      'w[0]: source has 1',
    );
  });
});

describe('limiter (client/transfer.ts)', () => {
  it('runs at most the limit at once and all of them in the end, failures included', async () => {
    const { limiter } = await import('../client/transfer.ts');
    const limit = limiter(2);
    let now = 0;
    let most = 0;
    const gates: (() => void)[] = [];
    const job = (fail: boolean) =>
      limit(async () => {
        now++;
        most = Math.max(most, now);
        await new Promise<void>((go) => gates.push(go));
        now--;
        if (fail) throw new Error('boom');
        return 1;
      });
    const all = Promise.allSettled([job(false), job(true), job(false), job(false)]);
    // Release whoever waits until all four ran (each releases the next through the limiter).
    while (gates.length || now) {
      await new Promise((r) => setImmediate(r));
      gates.shift()?.();
    }
    const out = await all;
    expect(most).toBe(2);
    expect(out.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
  });
});
