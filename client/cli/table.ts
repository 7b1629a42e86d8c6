/** Tables for the terminal (cli-table3) and the `--json` twin every listing has. */
import Table from 'cli-table3';

/** A table of `rows` under `head`, as text (no trailing newline). Empty cells for undefined. */
export function table(head: string[], rows: (string | number | undefined)[][]): string {
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const r of rows) t.push(r.map((c) => (c === undefined ? '' : String(c))));
  return t.toString();
}

/** Writes `value` as indented JSON and a newline. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
