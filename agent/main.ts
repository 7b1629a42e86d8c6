/**
 * The Sortie pilot agent: `node agent.js agent.json`, started inside the batch job (or forked locally).
 *
 * activate → loop { pull units while cores are free; run them; report states in batches } with a
 * heartbeat beside it. Commands (cancel units, cancel pilot) come back on whichever call answers first —
 * a pull (which a cancel wakes), a report, a heartbeat, or, while the agent is not pulling, a poll of
 * `/agent/commands` once a second — so a cancel takes effect within about a second. It ends itself
 * before the walltime (pilot DONE), on a cancel command, or on SIGTERM (the batch system's cancel),
 * and kills its units on the way out. It keeps no state worth losing: the control plane has it all.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requestOf, roomAfter } from '../core/backfill.ts';
import { RUNTIME_REACHED } from '../core/pilot-end.ts';
import { type SlotNode, SlotScheduler } from '../core/slots.ts';
import { type Allocation, discoverAllocation, fitPilot } from './allocation.ts';
import { AgentApi, PermanentApiError, type PulledUnit } from './api.ts';
import { ArmAhead } from './arm-ahead.ts';
import { readConfig } from './config.ts';
import { Executor, type KilledAs, type UnitDescription } from './executor.ts';
import { chooseMethods, executorCommand, type Methods, methodFor } from './launch-methods.ts';
import { Reporter } from './reporter.ts';
import { HelperSpawner } from './spawner.ts';
import { cleanupPilotSandbox } from './staging.ts';
import { WriteAhead } from './write-ahead.ts';

/** The stop reason of a pilot the user cancelled: its units end CANCELED, all others' FAILED. */
const PILOT_CANCELLED = 'pilot cancelled';
/** Why an agent stopped on SIGTERM when the user did not cancel its pilot. */
const SIGTERM_REASON = 'agent received SIGTERM (batch job cancelled or preempted)';
/** How long the agent asks the control plane, on SIGTERM, whether the user cancelled its pilot. */
const SIGTERM_ASK_MS = 3000;

/** Claimed units the agent keeps ready beyond its cores (small pulls, overlapped with execution). */
const PREFETCH_UNITS = 256;

const log = (msg: string) => process.stdout.write(`${new Date().toISOString()} ${msg}\n`);

const short = (h: string) => h.split('.')[0] ?? h;

/**
 * The nodes units may use and which of them is the agent's own. Without a launch method for other nodes
 * (SSH or SRUN) only the agent's node is used: forking there is all the agent can do.
 */
function usableNodes(
  alloc: Allocation,
  nodes: SlotNode[],
  methods: Methods,
): { nodes: SlotNode[]; local: number; note?: string } {
  const me = short(os.hostname());
  let local = nodes.findIndex((n) => short(n.name) === me);
  // The batch script runs on the first node (SLURM, PBS, SGE); LSF starts it on a launch node of its own.
  if (local < 0 && alloc.lrms !== 'LSF') local = 0;
  if (methods.task || nodes.length === 1) return { nodes, local };
  const only = nodes[Math.max(0, local)] as SlotNode;
  return {
    nodes: [only],
    local: 0,
    note: `only ${only.name} is used: the resource has no launch method for other nodes (launchMethods.order: ${methods.order.join(', ')})`,
  };
}

/**
 * Per-node executors (issue 14): the spawner on every other node of a multi-node pilot, started once
 * through the task method (one ssh connection or one job step per node, in parallel), so that a unit placed
 * there costs no ssh login or srun step of its own. A node whose executor does not come up is served by
 * the task method unit by unit, as without executors.
 */
async function startExecutors(
  program: string,
  nodes: readonly SlotNode[],
  local: number,
  methods: Methods,
): Promise<Map<number, HelperSpawner>> {
  const out = new Map<number, HelperSpawner>();
  if (!methods.task || nodes.length < 2) return out;
  const task = methods.task;
  await Promise.all(
    nodes.map(async (n, i) => {
      if (i === local) return;
      const via = executorCommand(task, n.name, program, methods.sshFlags);
      const s = via ? await HelperSpawner.onNode(program, n.name, via, log) : undefined;
      if (s) out.set(i, s);
    }),
  );
  if (out.size < nodes.length - 1)
    log(`executors: ${out.size} of ${nodes.length - 1} other nodes; the rest start units with ${task}`);
  return out;
}

async function main(configFile: string): Promise<number> {
  const cfg = readConfig(configFile);
  const api = new AgentApi(cfg.apiUrl, cfg.token);
  const methods = chooseMethods(cfg.launchMethods);
  const alloc = discoverAllocation(
    process.env,
    { name: os.hostname(), cores: os.availableParallelism() },
    cfg.gpusPerNode ?? 0,
  );
  writeFileSync(path.join(cfg.sandbox, 'agent.pid'), String(process.pid));
  const fit = fitPilot(
    alloc,
    { cores: cfg.cores, gpus: cfg.gpus ?? 0 },
    cfg.oversubscribe === true,
    cfg.resource,
  );
  const usable = 'error' in fit ? undefined : usableNodes(alloc, fit.nodes, methods);
  const nodes = usable?.nodes ?? alloc.nodes;
  const detail = {
    lrms: alloc.lrms,
    nodes: nodes.map((n) => n.name),
    coresPerNode: Math.max(...nodes.map((n) => n.cores)),
    cores: nodes.reduce((c, n) => c + n.cores, 0),
    gpus: nodes.reduce((c, n) => c + n.gpus, 0),
    nodeDetails: nodes,
    launchMethods: { task: methods.task ?? 'FORK', ...(methods.mpi ? { mpi: methods.mpi } : {}) },
  };
  log(`agent ${cfg.pilotId}: ${JSON.stringify(detail)}`);
  // The spawner is compiled while the activation is on the wire; the agent waits for both, so that all
  // of a pilot's units start one way.
  const spawnerReady =
    cfg.spawner === 'POPEN'
      ? Promise.resolve(undefined)
      : HelperSpawner.start(cfg.sandbox, log).catch((err: unknown) => {
          log(`spawner: ${String(err)}; units are spawned by the agent`);
          return undefined;
        });
  const { heartbeatIntervalSeconds } = await api.activate(detail);
  const spawner = await spawnerReady;
  if ('error' in fit) {
    // RP's agent fails the pilot when the allocation cannot hold it (error_handling.py).
    spawner?.close();
    log(`pilot does not fit: ${fit.error}`);
    await api.done('Failed', fit.error);
    return 1;
  }
  const local = usable?.local ?? 0;
  if (usable?.note) log(usable.note);
  const nodeSpawners = spawner ? await startExecutors(spawner.program, nodes, local, methods) : new Map();
  const scheduler = new SlotScheduler(nodes, cfg.oversubscribe === true);
  const totalCores = scheduler.cores;
  const nodeOffsets = nodes.map((_, i) => nodes.slice(0, i).reduce((c, n) => c + n.cores, 0));
  log(`active; heartbeat every ${heartbeatIntervalSeconds}s`);

  let stopping: { state: 'Done' | 'Failed'; reason: string } | undefined;
  /** SIGTERM came: start nothing more while the agent asks why (see the handler). */
  let terminating = false;
  // Set when a cancel_pilot command arrives (on any answer): the user cancelled this pilot.
  let pilotCancelled = false;
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

  const queue: PulledUnit[] = [];
  const reporter: Reporter = new Reporter(
    api,
    100,
    500,
    (err) => stop('Failed', `cannot report unit states: ${String(err)}`),
    undefined,
    () => executor.active === 0 && queue.length === 0,
  );
  const writeAhead: WriteAhead = new WriteAhead(api, reporter);
  // Units armed to start (arm-ahead.ts): the head of the queue, up to twice the cores' worth.
  const armAhead: ArmAhead = new ArmAhead(
    writeAhead,
    2 * totalCores,
    (uid) => {
      const i = queue.findIndex((u) => u.uid === uid);
      if (i >= 0) queue.splice(i, 1);
    },
    cfg.armAhead !== false,
  );
  /** When each running unit left the queue, for the runtime that decides whether to arm. */
  const startedAt = new Map<string, number>();
  const executor: Executor = new Executor(
    {
      sessionId: cfg.sessionId,
      pilotId: cfg.pilotId,
      sandbox: cfg.sandbox,
      ...(cfg.resource ? { resource: cfg.resource } : {}),
      methods,
      gpuEnv: cfg.gpuEnv ?? ['CUDA_VISIBLE_DEVICES'],
      hasGpus: detail.gpus > 0,
      nodeOffsets,
      ...(spawner ? { spawner } : {}),
      nodeSpawners,
      transfer: (body) => api.call('/agent/transfers', body),
    },
    (r) => reporter.report(r),
    (uid, slots) => {
      scheduler.release(slots);
      releases++;
      const t0 = startedAt.get(uid);
      startedAt.delete(uid);
      if (t0 !== undefined) armAhead.ran(performance.now() - t0);
      schedule();
      wake?.();
    },
    // Exactly-once start: a non-restartable unit is recorded EXECUTING before it is spawned, so a sweep
    // after this agent's death fails it rather than running it twice; a restartable one may rerun (RP).
    // An armed unit (arm-ahead.ts) is known to the control plane as possibly started already.
    // A unit whose arm is still out waits for it (arm-ahead.ts `take`), and starts with a write-ahead only
    // if it could not be asked. A held unit's write-ahead is its claim too (`held`).
    (u, start) => {
      if (u.description.restartable) return undefined;
      const writeAheadStart = () =>
        writeAhead.start({ ...start, ...(u.held ? { held: true as const } : {}) }).catch((err: unknown) => {
          stop('Failed', `cannot record unit starts: ${String(err)}`);
          throw err;
        });
      const taken = armAhead.take(u.uid);
      if (taken === undefined) return writeAheadStart();
      if (taken === 'armed') return 'armed';
      return taken.then((armed): Promise<boolean> | boolean | 'armed' =>
        armed === undefined ? writeAheadStart() : armed && 'armed',
      );
    },
  );
  let executed = 0;
  /** Units ended so far: room freed while a pull was out is not waited for (its wake-up found no waiter). */
  let releases = 0;
  /** Reports a unit the agent holds but never started as CANCELED (its cancel may already be recorded). */
  const cancelled = (u: PulledUnit) =>
    reporter.report({ uid: u.uid, state: 'Canceled', time: new Date().toISOString(), reason: 'cancelled' });
  api.inbox.bind({
    cancelUnit: (uid) => {
      const i = queue.findIndex((u) => u.uid === uid);
      if (i < 0) return executor.cancel(uid);
      armAhead.forget(uid);
      cancelled(queue.splice(i, 1)[0] as PulledUnit);
      return true;
    },
    cancelPilot: () => {
      pilotCancelled = true;
      // While a SIGTERM asks why it came, that path ends the pilot with the answer (see below).
      if (!terminating) stop('Done', PILOT_CANCELLED);
    },
  });
  // A unit that can never run here ends FAILED at once, with the reason; the units after it go on.
  const fail = (u: PulledUnit, reason: string) =>
    reporter.report({ uid: u.uid, state: 'Failed', time: new Date().toISOString(), stderr: reason, reason });
  // Continuous scheduler: start queued units in order while their slots are free (RP's CONTINUOUS).
  const schedule = () => {
    while (!stopping && !terminating && queue.length) {
      const next = queue[0] as PulledUnit;
      const d = next.description as UnitDescription;
      const req = { cores: d.cores ?? 1, gpus: d.gpus ?? 0, mpi: d.mpi === true };
      const never = scheduler.neverFits(req);
      if (never) {
        queue.shift();
        armAhead.forget(next.uid);
        fail(next, never);
        continue;
      }
      const slots = scheduler.allocate(req);
      if (!slots) break;
      queue.shift();
      const m = methodFor(req.mpi, slots, local, methods);
      if ('error' in m) {
        scheduler.release(slots);
        armAhead.forget(next.uid);
        fail(next, m.error);
        continue;
      }
      executed++;
      startedAt.set(next.uid, performance.now());
      executor.start(next, slots, m.method);
    }
    if (!stopping && !terminating) armAhead.top(queue);
  };

  const margin = cfg.shutdownMarginSeconds ?? Math.min(60, cfg.runtimeSeconds * 0.05);
  const walltime = setTimeout(
    () => stop('Done', RUNTIME_REACHED),
    Math.max(1, cfg.runtimeSeconds - margin) * 1000,
  );
  // SIGTERM is the batch system's cancel: Sortie's own after the user cancelled the pilot (the command is
  // on the pilot by then), or anyone else's (preemption, an admin, a node drain). Ask, briefly (the
  // batch system's grace is short): the units' end says which (CANCELED, or FAILED with the reason).
  process.once('SIGTERM', () => {
    terminating = true;
    // The heartbeat's answer carries the pilot's commands; the inbox sets `pilotCancelled` on a cancel.
    const asked = api.heartbeat({ running: executor.active, queued: queue.length, executed }).then(
      () => pilotCancelled,
      () => false,
    );
    const giveUp = new Promise<boolean>((r) => setTimeout(() => r(false), SIGTERM_ASK_MS).unref());
    const cancelled = Promise.race([asked, giveUp]);
    // The units die now (the batch system, or the orphan sweep after Sortie's own cancel, would kill
    // them anyway); their reports wait for the answer.
    executor.cancelAll(
      cancelled.then(
        (c): KilledAs =>
          c
            ? { state: 'Canceled', reason: 'cancelled' }
            : { state: 'Failed', reason: `pilot ended: ${SIGTERM_REASON}` },
      ),
    );
    void cancelled.then((c) => (c ? stop('Done', PILOT_CANCELLED) : stop('Failed', SIGTERM_REASON)));
  });
  process.once('SIGINT', () => stop('Failed', 'agent received SIGINT'));

  let missed = 0;
  const heartbeat = setInterval(() => {
    api
      .heartbeat({ running: executor.active, queued: queue.length, executed })
      .then(() => {
        missed = 0;
      })
      .catch((err) => {
        if (err instanceof PermanentApiError) stop('Failed', `heartbeat refused: ${err.message}`);
        else if (++missed >= 3) stop('Failed', `control plane unreachable: ${String(err)}`);
      });
  }, heartbeatIntervalSeconds * 1000);

  // Pull loop: keep a buffer of claimed units so the next spawn never waits for a pull, and pull again
  // well before it runs dry, so that the claim of the next batch overlaps the execution of this one.
  // (Units bound to this pilot at submit: claiming ahead takes nothing from other pilots. Units of a
  // backfilling manager are claimed only into free room, see `free` below.)
  const buffer = Math.max(2 * totalCores, PREFETCH_UNITS);
  let asking: Promise<void> | undefined;
  let askedAt = Number.NEGATIVE_INFINITY;
  // Units of a backfilling manager wait in its queue and none fit the room offered: wait for room (a unit
  // of ours ending wakes the loop) or a second, rather than asking again at once.
  let backlogged = false;
  /** A pull that asked for arms and was still out when the agent stopped. */
  let abandoned: Promise<{ units: PulledUnit[] }> | undefined;
  while (!stopping) {
    // A SIGTERM is being asked about: pull nothing more (nothing more starts). A pull sent now would
    // long-poll, and one that may arm is awaited at the stop, past a local job's grace before SIGKILL.
    if (terminating) {
      await stopped;
      break;
    }
    const want = Math.max(scheduler.freeCores + totalCores, buffer) - queue.length;
    // Pull again only once the buffer is half spent: a pull then claims many units in one request, not
    // the one or two that just ended (each pull is a request, an SQS receive and delete, and the unclaimed
    // rest of the messages it took sent back to the queue).
    if (want <= 0 || backlogged || queue.length > buffer / 2) {
      backlogged = false;
      // Not pulling, so no pull answer brings commands: ask for them, at most once a second and one
      // request at a time, while waiting for free room (units ending wake this loop far more often).
      if (!asking && performance.now() - askedAt >= 1000) {
        askedAt = performance.now();
        asking = api
          .commands()
          .catch((err: unknown) => {
            if (err instanceof PermanentApiError) stop('Failed', `commands refused: ${err.message}`);
          })
          .finally(() => {
            asking = undefined;
          });
      }
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 1000);
      });
      wake = undefined;
      continue;
    }
    try {
      // Units a pull abandoned here claims stay bound to this pilot: the sweep at its end reschedules them.
      // The room offered to backfilling managers' queues: free slots less the units held unstarted, so
      // late-bound units are claimed only when they can start here now (they would wait idle otherwise,
      // while another pilot had room for them).
      const free = roomAfter(
        scheduler.freeNodes(),
        queue.map((u) => requestOf(u.description)),
        cfg.oversubscribe === true,
      );
      const releasedBefore = releases;
      // The units that will land at the head of the queue are armed by their claim (arm-ahead.ts): an
      // idle agent spawns them the moment the answer comes, with no write-ahead round trip.
      const arm = armAhead.claimRoom(queue.length);
      // The rest of what it takes that needs a write-ahead comes held, claimed later by the write that
      // arms or starts each unit (arm-ahead.ts `holds`).
      const pulling = api.pull(want, 5, free, arm, armAhead.holds());
      const pulled = await Promise.race([pulling, stopped]);
      if (!pulled) {
        // Stopped while this pull was out: if it may arm, what it claims must still be disarmed (below).
        if (arm > 0) abandoned = pulling;
        break;
      }
      backlogged = pulled.backlog && pulled.units.length === 0 && releases === releasedBefore;
      // A cancel that reached the agent before the unit did (a pull answer racing it): never started.
      for (const u of pulled.units) {
        // A unit this agent holds already, come again (a queue message delivered twice): one copy. If this
        // pull claimed it, the queued copy takes the claim (its lease, its arm).
        const copy = queue.find((q) => q.uid === u.uid);
        if (copy || executor.has(u.uid)) {
          if (copy?.held && !u.held) {
            copy.held = false;
            if (u.lease !== undefined) copy.lease = u.lease;
            if (u.armed) armAhead.claimed(u.uid);
          }
          continue;
        }
        if (u.armed) armAhead.claimed(u.uid);
        if (api.inbox.cancelledEarly(u.uid)) {
          armAhead.forget(u.uid);
          cancelled(u);
        } else queue.push(u);
      }
      schedule();
    } catch (err) {
      stop('Failed', `cannot pull units: ${String(err)}`);
    }
  }

  clearTimeout(walltime);
  clearInterval(heartbeat);
  // Units armed but never started here are disarmed, so the sweep reschedules them as any queued unit
  // (an armed one it would fail: it cannot know it never started). That includes what a pull abandoned by
  // the stop armed by its claim: its answer is awaited (its long poll is at most 5 s), then its units are
  // disarmed with the queue's. Bounded: the batch system's grace.
  const late = abandoned
    ? abandoned.then(
        (p) => {
          for (const u of p.units) {
            if (u.armed) armAhead.claimed(u.uid);
            queue.push(u);
          }
        },
        () => {},
      )
    : undefined;
  const stillArmed = await Promise.race([
    Promise.resolve(late).then(() => armAhead.disarm(queue)),
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 10_000).unref()),
  ]);
  if (stillArmed?.length !== 0)
    log(`could not disarm ${stillArmed?.length ?? 'some'} unstarted units: the sweep fails them`);
  // Units still queued were claimed but never started: the sweep reschedules them. Running ones are
  // killed: CANCELED when the user cancelled the pilot (RP); otherwise they did not finish: FAILED, with
  // "pilot runtime reached" at the walltime, else the reason the pilot ended.
  const why = stopping?.reason ?? 'agent loop ended';
  executor.cancelAll(
    why === PILOT_CANCELLED
      ? undefined
      : { state: 'Failed', reason: why === RUNTIME_REACHED ? RUNTIME_REACHED : `pilot ended: ${why}` },
  );
  const deadline = Date.now() + 5_000;
  while (executor.active && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  spawner?.close();
  for (const s of nodeSpawners.values()) s.close();
  await reporter.close();
  if (cfg.cleanup)
    await cleanupPilotSandbox(cfg.sandbox).then(
      (gone) => log(`cleanup: removed ${gone.length} entries of ${cfg.sandbox}, logs kept`),
      (err: unknown) => log(`cleanup of ${cfg.sandbox} failed: ${String(err)}`),
    );
  const final = stopping ?? { state: 'Failed' as const, reason: 'agent loop ended without a reason' };
  // The summary goes out before the done callback: that callback ends the pilot, whose end cancels the
  // batch job, and a second SIGTERM (the first was taken) kills the agent before the callback returns.
  log(
    `agent ends: ${final.state} (${final.reason}); ${executed} units started (${armAhead.armed} armed ahead, ${armAhead.armedAtClaim} by their claim), ${armAhead.heldClaimed} held units claimed by their arm, ${writeAhead.refused} refused at start, ${armAhead.refused} arms refused`,
  );
  await api.done(final.state, final.reason).catch((err) => log(`done callback failed: ${String(err)}`));
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
