/**
 * The Sortie pilot agent: `node agent.js agent.json`, started inside the batch job (or forked locally).
 *
 * activate → loop { pull units while cores are free; run them; report states in batches } with a
 * heartbeat beside it that also carries commands back (cancel units, cancel pilot). It ends itself
 * before the walltime (pilot DONE), on a cancel command, or on SIGTERM (the batch system's cancel),
 * and kills its units on the way out. It keeps no state worth losing: the control plane has it all.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { discoverAllocation } from './allocation.ts';
import { AgentApi, PermanentApiError, type PulledUnit } from './api.ts';
import { readConfig } from './config.ts';
import { Executor } from './executor.ts';
import { Reporter } from './reporter.ts';

/** Claimed units the agent keeps ready beyond its cores (small pulls, overlapped with execution). */
const PREFETCH_UNITS = 256;

const log = (msg: string) => process.stdout.write(`${new Date().toISOString()} ${msg}\n`);

async function main(configFile: string): Promise<number> {
  const cfg = readConfig(configFile);
  const api = new AgentApi(cfg.apiUrl, cfg.token);
  const alloc = discoverAllocation(process.env, cfg.cores);
  const totalCores = Math.max(1, Math.min(cfg.cores, alloc.coresPerNode * alloc.nodes.length));
  writeFileSync(path.join(cfg.sandbox, 'agent.pid'), String(process.pid));
  log(`agent ${cfg.pilotId}: ${alloc.lrms} ${alloc.nodes.join(',')} cores=${totalCores}`);

  const { heartbeatIntervalSeconds } = await api.activate({
    lrms: alloc.lrms,
    nodes: alloc.nodes,
    coresPerNode: alloc.coresPerNode,
    cores: totalCores,
  });
  log(`active; heartbeat every ${heartbeatIntervalSeconds}s`);

  let stopping: { state: 'Done' | 'Failed'; reason: string } | undefined;
  let wake: (() => void) | undefined;
  // Settles on stop: an in-flight long-poll pull is not waited out (the batch system's grace after
  // SIGTERM is short, and units still running when it ends are orphaned).
  let onStop: () => void = () => {};
  const stopped = new Promise<undefined>((r) => {
    onStop = () => r(undefined);
  });
  const stop = (state: 'Done' | 'Failed', reason: string) => {
    if (stopping) return;
    stopping = { state, reason };
    log(`stopping: ${state} (${reason})`);
    wake?.();
    onStop();
  };

  let freeCores = totalCores;
  const queue: PulledUnit[] = [];
  const reporter = new Reporter(
    api,
    100,
    500,
    (err) => stop('Failed', `cannot report unit states: ${String(err)}`),
    undefined,
    () => executor.active === 0 && queue.length === 0,
  );
  const executor = new Executor(
    {
      sessionId: cfg.sessionId,
      pilotId: cfg.pilotId,
      sandbox: cfg.sandbox,
      ...(cfg.resource ? { resource: cfg.resource } : {}),
    },
    (r) => reporter.report(r),
    (_uid, cores) => {
      freeCores += cores;
      schedule();
      wake?.();
    },
  );
  let executed = 0;
  // Continuous scheduler: start queued units in order while their cores fit (RP's CONTINUOUS).
  const schedule = () => {
    while (!stopping && queue.length) {
      const next = queue[0] as PulledUnit;
      const need = Math.min(next.description.cores ?? 1, totalCores);
      if (need > freeCores) break;
      queue.shift();
      freeCores -= need;
      executed++;
      executor.start(next);
    }
  };

  const margin = cfg.shutdownMarginSeconds ?? Math.min(60, cfg.runtimeSeconds * 0.05);
  const walltime = setTimeout(
    () => stop('Done', 'runtime reached'),
    Math.max(1, cfg.runtimeSeconds - margin) * 1000,
  );
  process.once('SIGTERM', () => stop('Failed', 'agent received SIGTERM (batch job cancelled or preempted)'));
  process.once('SIGINT', () => stop('Failed', 'agent received SIGINT'));

  let missed = 0;
  const heartbeat = setInterval(() => {
    api
      .heartbeat({ running: executor.active, queued: queue.length, executed })
      .then((cmd) => {
        missed = 0;
        for (const uid of cmd.cancelUnits) {
          const i = queue.findIndex((u) => u.uid === uid);
          if (i >= 0) {
            const [u] = queue.splice(i, 1);
            if (u)
              reporter.report({
                uid: u.uid,
                state: 'Canceled',
                time: new Date().toISOString(),
                reason: 'cancelled',
              });
          } else executor.cancel(uid);
        }
        if (cmd.cancelPilot) stop('Done', 'pilot cancelled');
      })
      .catch((err) => {
        if (err instanceof PermanentApiError) stop('Failed', `heartbeat refused: ${err.message}`);
        else if (++missed >= 3) stop('Failed', `control plane unreachable: ${String(err)}`);
      });
  }, heartbeatIntervalSeconds * 1000);

  // Pull loop: keep a buffer of claimed units so the next spawn never waits for a pull, and pull again
  // well before it runs dry, so that the claim of the next batch overlaps the execution of this one.
  // (Units are bound to this pilot at submit: claiming ahead takes nothing from other pilots.)
  const buffer = Math.max(2 * totalCores, PREFETCH_UNITS);
  while (!stopping) {
    const want = Math.max(freeCores + totalCores, buffer) - queue.length;
    if (want <= 0) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 1000);
      });
      wake = undefined;
      continue;
    }
    try {
      // Units a pull abandoned here claims stay bound to this pilot: the sweep at its end reschedules them.
      const pulled = await Promise.race([api.pull(want, 5), stopped]);
      if (!pulled) break;
      queue.push(...pulled.units);
      schedule();
    } catch (err) {
      stop('Failed', `cannot pull units: ${String(err)}`);
    }
  }

  clearTimeout(walltime);
  clearInterval(heartbeat);
  // Units still queued were claimed but never started: report them so the sweep can reschedule them.
  executor.cancelAll();
  const deadline = Date.now() + 5_000;
  while (executor.active && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await reporter.close();
  const final = stopping ?? { state: 'Failed' as const, reason: 'agent loop ended without a reason' };
  await api.done(final.state, final.reason).catch((err) => log(`done callback failed: ${String(err)}`));
  log(`agent ends: ${final.state} (${final.reason}); ${executed} units started`);
  return final.state === 'Done' ? 0 : 1;
}

const configFile = process.argv[2];
if (!configFile) {
  process.stderr.write('usage: node agent.cjs <agent.json>\n');
  process.exit(2);
}
main(configFile).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `agent failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
