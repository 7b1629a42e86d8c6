/**
 * A tripwire for issue 17: no test asserts elapsed wall-clock time (timings belong in `npm run bench`; a
 * test of the code's own timeout checks the state that timeout produced). Scans the tests and examples
 * for an `expect(...)` reading the clock, directly or through a variable assigned from it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(import.meta.dirname, '..');
const CLOCK = /\b(?:Date\.now|performance\.now)\(\)/;

/** `file:line: text` of each expect that reads the clock, in `src`. */
function clockAssertions(file: string, src: string): string[] {
  const lines = src.split('\n');
  // Names holding a time or a duration: `const started = Date.now()`, `let t = performance.now() - x`
  // (not names built with the clock, like `const name = \`m-${Date.now()}\``).
  const timed = new Set<string>();
  for (const line of lines) {
    const m = /\b(?:const|let|var)\s+(\w+)\s*=\s*(?:Date|performance)\.now\(\)\s*(?:[-+;]|$)/.exec(line);
    if (m?.[1]) timed.add(m[1]);
  }
  const out: string[] = [];
  lines.forEach((line, i) => {
    for (const m of line.matchAll(/\bexpect\(([^;]*)/g)) {
      const arg = m[1] ?? '';
      const names = arg.match(/\b\w+\b/g) ?? [];
      if (CLOCK.test(arg) || names.some((n) => timed.has(n))) out.push(`${file}:${i + 1}: ${line.trim()}`);
    }
  });
  return out;
}

function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(dir, f));
}

describe('test hygiene', () => {
  it('finds a clock assertion, direct or through a variable (the check can fail)', () => {
    const src = [
      'const started = Date.now();',
      'await session.close();',
      'expect(Date.now() - started).toBeLessThan(20_000);',
      'const t0 = performance.now();',
      'const elapsed = performance.now() - t0;',
      'expect(elapsed, "slow").toBeLessThan(5);',
      "expect(pilot.state).toBe('Canceled');",
    ].join('\n');
    expect(clockAssertions('x.ts', src)).toEqual([
      'x.ts:3: expect(Date.now() - started).toBeLessThan(20_000);',
      'x.ts:6: expect(elapsed, "slow").toBeLessThan(5);',
    ]);
  });

  it('no test or example asserts elapsed wall-clock time', () => {
    const found = [...sources('test'), ...sources('examples')]
      .filter((f) => f !== path.join('test', 'test-hygiene.test.ts'))
      .flatMap((f) => clockAssertions(f, readFileSync(path.join(ROOT, f), 'utf8')));
    expect(found).toEqual([]);
  });
});
