/**
 * RP's own examples translated to examples/, run end to end on the embedded backend: the bag of tasks
 * whose arguments expand `$CU_NO` from each unit's environment (tutorial/simple_bot.py), and MPI hello
 * world through the MPIRUN launch method of `local.localhost` (helloworld_mpi.py; skipped without mpirun), and
 * four mpi4py units (running_mpi_executables.py; skipped without mpirun or Debian's mpi4py).
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkHelloworldMpi, helloworldMpi } from '../examples/helloworld-mpi.ts';
import {
  checkRunningMpiExecutables,
  PYTHON,
  runningMpiExecutables,
} from '../examples/running-mpi-executables.ts';
import { BOT_SIZE, checkSimpleBot, simpleBot } from '../examples/simple-bot.ts';
import { type Backend, startBackend } from '../local/backend.ts';

let backend: Backend;
const quiet = { log: () => {}, quiet: true } as const;
const hasMpirun = spawnSync('mpirun', ['--version']).status === 0;
const hasMpi4py = hasMpirun && spawnSync(PYTHON, ['-c', 'import mpi4py']).status === 0;

beforeAll(async () => {
  backend = await startBackend();
});
afterAll(async () => {
  await backend?.close();
});

describe("RP's examples", () => {
  it('simple_bot: every unit echoes its own $CU_NO', async () => {
    const result = await simpleBot(backend.apiUrl, quiet);
    expect(result.units).toHaveLength(BOT_SIZE);
    expect(checkSimpleBot(result)).toEqual([]);
  });

  it.skipIf(!hasMpirun)('helloworld_mpi: each MPI unit prints one hello per rank', async () => {
    const result = await helloworldMpi(backend.apiUrl, quiet);
    expect(result.units).toHaveLength(2);
    expect(checkHelloworldMpi(result)).toEqual([]);
    for (const u of result.units) expect(u.description.mpi).toBe(true);
  });

  it.skipIf(!hasMpi4py)(
    'running_mpi_executables: four mpi4py units, each one line per rank (needs mpirun and mpi4py)',
    async () => {
      const seen: string[] = [];
      const result = await runningMpiExecutables(backend.apiUrl, { log: (l) => seen.push(l), quiet: true });
      expect(result.units).toHaveLength(4);
      expect(checkRunningMpiExecutables(result)).toEqual([]);
      // The callbacks RP's script registers saw every unit end.
      for (const u of result.units)
        expect(seen).toContain(`[Callback]: ComputeUnit  '${u.uid}' state: Done.`);
    },
    300_000,
  );
});
