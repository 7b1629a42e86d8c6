import { describe, expect, it } from 'vitest';
import { clipTail, cutMark, OUTPUT_MARK_BYTES, OUTPUT_TAIL_BYTES, tailBytes } from '../core/output.ts';

describe('output tails', () => {
  it('keeps short output as it is', () => {
    expect(clipTail('hello\n')).toBe('hello\n');
    expect(clipTail('x'.repeat(OUTPUT_TAIL_BYTES + OUTPUT_MARK_BYTES))).toHaveLength(
      OUTPUT_TAIL_BYTES + OUTPUT_MARK_BYTES,
    );
  });

  it('keeps the marked last 64 KiB of long output, cut on a character boundary', () => {
    const text = `${'é'.repeat(100_000)}END`;
    const out = clipTail(text);
    const total = Buffer.byteLength(text);
    const body = out.slice(out.indexOf('\n') + 1);
    expect(out.startsWith(`[Sortie: first ${total - Buffer.byteLength(body)} bytes cut]\n`)).toBe(true);
    expect(body.endsWith('éEND')).toBe(true);
    expect(body).not.toContain('\uFFFD');
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(OUTPUT_TAIL_BYTES);
    expect(Buffer.byteLength(body)).toBeGreaterThanOrEqual(OUTPUT_TAIL_BYTES - 1);
  });

  it('tailBytes skips a partial character; the mark names the file', () => {
    const buf = Buffer.from('aé', 'utf8'); // 61 c3 a9
    expect(tailBytes(buf, 1).toString()).toBe('');
    expect(tailBytes(buf, 2).toString()).toBe('é');
    expect(cutMark(5, '/s/u/STDOUT')).toBe('[Sortie: first 5 bytes cut; the whole file is /s/u/STDOUT]\n');
  });
});
