/**
 * How much of a unit's stdout and stderr its record keeps. RP keeps the tail (where the error is); the
 * whole files stay in the unit sandbox. Two tails, the description (≤ 128 KiB) and the history stay well
 * inside DynamoDB's 400 KB item limit.
 */

/** Bytes of each of stdout and stderr kept in the unit record: the last 64 KiB. */
export const OUTPUT_TAIL_BYTES = 64 * 1024;

/** Room for the line that marks a shortened output (`[… first N bytes cut; …]`). */
export const OUTPUT_MARK_BYTES = 1024;

/** The mark put in front of a shortened output, naming what was cut and where the whole file is. */
export function cutMark(cutBytes: number, file?: string): string {
  const where = file ? `; the whole file is ${file}` : '';
  return `[Sortie: first ${cutBytes} bytes cut${where}]\n`.slice(0, OUTPUT_MARK_BYTES);
}

/**
 * The last `max` bytes of `text` (UTF-8), marked when shortened; cut on a character boundary. For outputs
 * that arrive longer than the agent should have sent (an old agent, a hand-made report).
 */
export function clipTail(text: string, max = OUTPUT_TAIL_BYTES + OUTPUT_MARK_BYTES): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= max) return text;
  const kept = tailBytes(buf, OUTPUT_TAIL_BYTES);
  return cutMark(buf.length - kept.length) + kept.toString('utf8');
}

/** The last `n` bytes of `buf`, without a partial UTF-8 character at the start. */
export function tailBytes(buf: Uint8Array, n: number): Buffer {
  let start = Math.max(0, buf.length - n);
  // Skip continuation bytes (10xxxxxx) so that the tail starts on a character.
  while (start < buf.length && ((buf[start] ?? 0) & 0xc0) === 0x80) start++;
  return Buffer.from(buf.buffer, buf.byteOffset + start, buf.length - start);
}
