/** The real test bed (scripts/testbed.sh) as the suites see it. */
import { execFileSync } from 'node:child_process';
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

const sgeDir = process.env.SORTIE_SGE_DIR ?? '/var/tmp/sortie-sge';

/**
 * The single-node bed's facts plus Grid Engine's (`testbed.sh sge up` wrote `$SORTIE_SGE_DIR/env`), or why
 * the suite cannot run.
 */
export function readSgeTestbed(): { env: Record<string, string> } | { skip: string } {
  const tb = readTestbed();
  if ('skip' in tb) return tb;
  const file = path.join(sgeDir, 'env');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { skip: `${file} absent: run scripts/testbed.sh sge up (as root)` };
  }
  const env = { ...tb.env };
  for (const m of text.matchAll(/^export (\w+)='([^']*)'$/gm))
    if (m[1] && m[2] !== undefined) env[m[1]] = m[2];
  return { env };
}

/**
 * A job's state letters in Grid Engine's qstat (`qw`, `hqw`, `r`, `dr`…), any user's, as root sees them;
 * '' once it is no longer listed. Runs the binary behind Debian's `qstat` wrapper, which spends a second
 * working out the architecture on every call.
 */
export function sgeJobState(env: Record<string, string>, jobId: string): string {
  const out = execFileSync(path.join(env.SORTIE_SGE_BIN ?? '', 'qstat'), ['-u', '*'], {
    env: { ...process.env, SGE_ROOT: env.SORTIE_SGE_ROOT ?? '', SGE_CELL: env.SORTIE_SGE_CELL ?? '' },
    encoding: 'utf8',
  });
  const row = out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((cols) => cols[0] === jobId);
  return row?.[4] ?? '';
}
