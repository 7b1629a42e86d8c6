/**
 * The persistent spawner alone (figure 9): the agent's own C spawner (agent/spawner.ts) driven straight
 * from this process, with what the agent hands it per unit — a sandbox directory, launch.sh and two output
 * files — `window` units in flight. Between the C `posix_spawn` loop (no files) and the agent (pulls,
 * scheduling, reports), it tells which of the two a gap belongs to.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { HelperSpawner } from '../agent/spawner.ts';

/** A launch script of about the agent's size for a null unit (exports, then exec). */
const SCRIPT = `#!/bin/bash\n${'export RP_SOME_VARIABLE="some value"\n'.repeat(12)}exec /bin/true\n`;

/** Null units per second through a fresh spawner in `dir`; rejects when one fails or the spawner dies. */
export async function spawnerAloneRate(dir: string, n: number, window: number): Promise<number> {
  mkdirSync(dir, { recursive: true });
  const notes: string[] = [];
  const spawner = await HelperSpawner.start(dir, (m) => notes.push(m));
  if (!spawner) throw new Error(`spawner alone: did not start (${notes.join('; ')})`);
  try {
    let started = 0;
    let ended = 0;
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const next = () => {
        if (started >= n) return;
        const cwd = path.join(dir, `unit.${String(started++).padStart(6, '0')}`);
        spawner.spawn(
          {
            cwd,
            stdout: path.join(cwd, 'STDOUT'),
            stderr: path.join(cwd, 'STDERR'),
            script: { path: path.join(cwd, 'launch.sh'), text: SCRIPT },
            file: '/bin/true',
            args: [],
            env: { RP_UNIT_ID: path.basename(cwd) },
          },
          {
            spawned: () => {},
            failed: (stage, code) => reject(new Error(`spawner alone: a unit failed at ${stage} (${code})`)),
            exited: () => {
              if (++ended === n) resolve();
              else next();
            },
            lost: (reason) => reject(new Error(`spawner alone: ${reason}`)),
          },
        );
      };
      for (let i = 0; i < window; i++) next();
    });
    return n / ((performance.now() - t0) / 1000);
  } finally {
    spawner.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
