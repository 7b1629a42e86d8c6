/**
 * Figure 9's peers (issue 14): other ways to run many null `/bin/true` units at a fixed concurrency on
 * this node, measured in the same run as Sortie — a C `posix_spawn` loop (the node's spawn limit, when a
 * C compiler is here), `xargs -P`, Node's `child_process.spawn` (in a Node process of its own), and GNU
 * parallel and Dask when installed (absent ones are skipped with a note, never guessed). Each returns units per second over its own wall
 * time; every wait is bounded.
 */
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { rawSpawnRate } from './baselines.ts';

/** One peer: its rate function, or why it was skipped. */
export interface Peer {
  name: string;
  run?: (n: number, window: number) => Promise<number>;
  skipped?: string;
}

const C_LOOP = String.raw`#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
/* n spawns of /bin/true, w at a time, stdio on /dev/null; prints units per second. */
int main(int argc, char **argv) {
  if (argc < 3) return 2;
  long n = atol(argv[1]), w = atol(argv[2]), started = 0, done = 0;
  char *args[] = {"/bin/true", NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  for (int fd = 0; fd < 3; fd++)
    posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd ? 1 : 0, 0);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  pid_t pid;
  for (; started < n && started < w; started++)
    if (posix_spawn(&pid, args[0], &fa, NULL, args, environ) != 0) return 3;
  while (done < n) {
    int st;
    if (waitpid(-1, &st, 0) < 0) return 4;
    done++;
    if (started < n) {
      if (posix_spawn(&pid, args[0], &fa, NULL, args, environ) != 0) return 3;
      started++;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%f\n", n / ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9));
  return 0;
}
`;

const DASK = `import subprocess, sys, time
from dask.distributed import Client, LocalCluster
n, w = int(sys.argv[1]), int(sys.argv[2])
def unit(i):
    return subprocess.run(['/bin/true']).returncode
if __name__ == '__main__':
    with LocalCluster(n_workers=1, threads_per_worker=w, processes=True, dashboard_address=None) as c, Client(c) as cl:
        cl.gather(cl.map(unit, range(w * 4), pure=False))
        t = time.perf_counter()
        codes = cl.gather(cl.map(unit, range(n), pure=False))
        dt = time.perf_counter() - t
    if any(codes): sys.exit(3)
    print(n / dt)
`;

/** Runs `file args`, bounded; resolves its stdout. */
function run(file: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${file}: ${stderr.trim().slice(-300) || err.message}`)) : resolve(stdout),
    ),
  );
}

/** Wall-clock units per second of a shell pipeline that runs `n` units. */
async function timed(script: string, n: number, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  await run('/bin/sh', ['-c', script], timeoutMs);
  return n / ((performance.now() - t0) / 1000);
}

function has(cmd: string, args: string[], expect?: RegExp): boolean {
  try {
    const out = execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
    return expect ? expect.test(out) : true;
  } catch {
    return false;
  }
}

/** The peers on this machine, in a fixed order; helper programs go into `dir`. */
export function peers(dir: string): Peer[] {
  const out: Peer[] = [];
  const cc = process.env.CC || 'cc';
  const loop = path.join(dir, 'posix-spawn-loop');
  try {
    writeFileSync(`${loop}.c`, C_LOOP);
    execFileSync(cc, ['-O2', '-o', loop, `${loop}.c`], { stdio: 'pipe', timeout: 60_000 });
    out.push({
      name: 'C posix_spawn loop',
      run: async (n, w) => Number((await run(loop, [String(n), String(w)], 300_000)).trim()),
    });
  } catch (err) {
    out.push({ name: 'C posix_spawn loop', skipped: `no C compiler (${cc}): ${String(err).slice(0, 120)}` });
  }
  out.push({
    name: 'xargs -P',
    run: (n, w) => timed(`seq 1 ${n} | xargs -P ${w} -n 1 /bin/true`, n, 300_000),
  });
  out.push({ name: 'Node child_process.spawn', run: (n, w) => rawSpawnRate(n, w) });
  if (has('parallel', ['--version'], /GNU parallel/))
    out.push({
      name: 'GNU parallel',
      run: (n, w) => timed(`seq 1 ${n} | parallel --will-cite -j ${w} /bin/true`, n, 600_000),
    });
  else out.push({ name: 'GNU parallel', skipped: 'GNU parallel not installed' });
  if (has('python3', ['-c', 'import dask.distributed'])) {
    const script = path.join(dir, 'dask-peer.py');
    writeFileSync(script, DASK);
    out.push({
      name: 'Dask LocalCluster',
      run: async (n, w) => Number((await run('python3', [script, String(n), String(w)], 600_000)).trim()),
    });
  } else out.push({ name: 'Dask LocalCluster', skipped: 'python3 dask.distributed not installed' });
  return out;
}
