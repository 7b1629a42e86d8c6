/** The real test bed (scripts/testbed.sh) as the suites see it. */
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.env.SORTIE_TESTBED_DIR ?? '/var/tmp/sortie-testbed';

/** The facts `testbed.sh up` wrote, or why the suite cannot run. */
export function readTestbed(): { env: Record<string, string> } | { skip: string } {
  const file = path.join(dir, 'env');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { skip: `${file} absent: run scripts/testbed.sh up` };
  }
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^export (\w+)='([^']*)'$/gm))
    if (m[1] && m[2] !== undefined) env[m[1]] = m[2];
  try {
    accessSync(env.SORTIE_TESTBED_KEY ?? '', constants.R_OK);
  } catch {
    return { skip: `test bed key ${env.SORTIE_TESTBED_KEY} not readable (run the tests as root)` };
  }
  return { env };
}
