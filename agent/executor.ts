/**
 * Runs units on the slots the scheduler gave them, each from a bash launch script in its own sandbox
 * `<pilot sandbox>/<uid>` (RP's agent launch script): the script exports the environment (the RP_*
 * variables, the GPU lists, the unit's own), runs pre_exec, the command through the unit's launch method
 * (see launch-methods.ts), post_exec, and exits with the command's code. The script stays in the sandbox
 * so that a user can rerun it by hand. Per unit the agent does one mkdir and one write (both async), one
 * spawn, and reads the tails of the output files at exit. A unit whose script would do nothing but exec
 * its command is exec'd directly (same effect, no bash per unit; see `direct` below).
 */
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdir, openSync, readSync, rm, writeFile } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cutMark, OUTPUT_TAIL_BYTES, tailBytes } from '../core/output.ts';
import type { Slot } from '../core/slots.ts';
import type { PulledUnit, StartReport, UnitReport } from './api.ts';
import { ARM_BELOW_MS } from './arm-ahead.ts';
import {
  launchScript,
  type Method,
  type Methods,
  remoteKillCommand,
  spawnCommand,
} from './launch-methods.ts';
import type { HelperSpawner, SpawnStage } from './spawner.ts';
import {
  directivesToRun,
  runDirectives,
  StagingError,
  type StagingPlaces,
  type TransferCall,
} from './staging.ts';

/** What the executor needs from the pilot. */
export interface ExecutorContext {
  sessionId: string;
  pilotId: string;
  sandbox: string;
  resource?: string;
  methods: Methods;
  /** Variables that list a unit's GPU ids (CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, ZE_AFFINITY_MASK). */
  gpuEnv: readonly string[];
  /** Whether the pilot has GPUs: then a unit without GPUs gets the lists empty, so it sees none. */
  hasGpus: boolean;
  /** Cores on the nodes before node i (IBRUN's task offset). */
  nodeOffsets: readonly number[];
  /** The node's persistent spawner; without it (no compiler, or agentSpawner POPEN) the agent spawns. */
  spawner?: HelperSpawner;
  /**
   * Spawners on the other nodes (per-node executors), by node index: a single-node unit placed there
   * starts through it as it would on the agent's node (FORK), not through the task method's ssh or srun.
   */
  nodeSpawners?: ReadonlyMap<number, HelperSpawner>;
  /** The control plane's transfer route (TRANSFER directives); absent, a TRANSFER fails naming why. */
  transfer?: TransferCall;
}

/** A unit description as pulled, with the fields this executor reads. */
export type UnitDescription = PulledUnit['description'] & { mpi?: boolean };

const tailBuf = Buffer.alloc(OUTPUT_TAIL_BYTES);

/**
 * The last OUTPUT_TAIL_BYTES of a file, marked when shortened ('' if it is missing). Synchronous on
 * purpose: most outputs are a few bytes, and open/read/close on the loop thread costs far less CPU per
 * unit than the same through the thread pool.
 */
export function readTail(file: string): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const n = readSync(fd, tailBuf, 0, OUTPUT_TAIL_BYTES, 0);
    if (n < OUTPUT_TAIL_BYTES) return tailBuf.toString('utf8', 0, n);
    const size = fstatSync(fd).size;
    if (size === n) return tailBuf.toString('utf8', 0, n);
    const got = readSync(fd, tailBuf, 0, OUTPUT_TAIL_BYTES, size - OUTPUT_TAIL_BYTES);
    const kept = tailBytes(tailBuf.subarray(0, got), got);
    return cutMark(size - kept.length, file) + kept.toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The callback forms cost less per call than fs/promises (no FileHandle); one mkdir and one write per unit. */
const mkdirAsync = (dir: string) =>
  new Promise<void>((resolve, reject) =>
    mkdir(dir, (err) => (err && err.code !== 'EEXIST' ? reject(err) : resolve())),
  );
const writeAsync = (file: string, text: string) =>
  new Promise<void>((resolve, reject) =>
    writeFile(file, text, { mode: 0o700 }, (err) => (err ? reject(err) : resolve())),
  );

/** What the spawner's child was doing when a start failed (see spawner.ts). */
const stageText: Record<Exclude<SpawnStage, 'exec'>, string> = {
  spawner: 'the spawner could not fork for',
  sandbox: 'cannot make or enter the sandbox',
  script: 'cannot write launch.sh in',
  output: 'cannot open the output files in',
};

/** Characters that bash acts on inside double quotes. */
const EXPANDS = /[$`\\]/;

/** A unit between start and its report: its local process and, over SSH, its session on the remote node. */
interface Running {
  pid: number;
  cancelled: boolean;
  /** How a killed unit is reported: CANCELED unless the pilot's end says otherwise (walltime: FAILED). */
  killedAs?: KilledAs | Promise<KilledAs>;
  remote?: { node: string; sid: number };
  /** The spawner that started it when that runs on another node: kills go through it (pid is its node's). */
  executor?: HelperSpawner;
  /** An armed unit's EXECUTING, held back a moment to go with its end in one write (see onSpawn). */
  heldStart?: { report: UnitReport; timer: NodeJS.Timeout };
}

/**
 * How long an armed unit's EXECUTING report may wait for its end (arm-ahead.ts arms only units shorter
 * than this): the mark already tells the control plane it may be running, so the report is for people.
 */
const HOLD_ARMED_START_MS = ARM_BELOW_MS;

/** The state and reason a unit killed by the agent is reported with. */
export interface KilledAs {
  state: 'Canceled' | 'Failed';
  reason: string;
}

const CANCELLED: KilledAs = { state: 'Canceled', reason: 'cancelled' };

/** How long the report of a unit killed by a signal waits for the agent's own stop (see launch). */
const SIGNAL_GRACE_MS = 1000;

/** Spawns units and reports their states; cancel kills the unit's process group (and its remote session). */
export class Executor {
  private readonly running = new Map<string, Running>();

  constructor(
    private readonly ctx: ExecutorContext,
    private readonly report: (r: UnitReport) => void,
    private readonly onExit: (uid: string, slots: readonly Slot[]) => void,
    /**
     * Write-ahead of a start (see write-ahead.ts): undefined when the unit needs none (then EXECUTING is
     * reported at spawn), 'armed' when it is armed (arm-ahead.ts: EXECUTING is reported with its end, or
     * after {@link HOLD_ARMED_START_MS}), else resolves whether the control plane recorded it (true), armed
     * it meanwhile ('armed': an arm that was out when the unit came to start) or refused it (false: it is
     * not spawned).
     */
    private readonly writeAhead: (
      unit: PulledUnit,
      start: StartReport,
    ) => Promise<boolean | 'armed'> | 'armed' | undefined = () => undefined,
  ) {}

  /** Whether this unit is running here (or being started). */
  has(uid: string): boolean {
    return this.running.has(uid);
  }

  get active(): number {
    return this.running.size;
  }

  /**
   * Starts one unit on its slots with `method`; EXECUTING is recorded before the spawn (write-ahead) or
   * reported at spawn, the end at exit.
   */
  start(unit: PulledUnit, slots: readonly Slot[], method: Method): void {
    // Held from here, so that a cancel or the pilot's end sees the unit while its sandbox is being made.
    const entry: Running = { pid: -1, cancelled: false };
    this.running.set(unit.uid, entry);
    this.launch(unit, slots, method, entry).catch((err: Error) => {
      this.finish(unit, slots, 'Failed', undefined, `cannot start unit: ${err.message}`);
    });
  }

  private async launch(
    unit: PulledUnit,
    slots: readonly Slot[],
    placedMethod: Method,
    entry: Running,
  ): Promise<void> {
    const d = unit.description as UnitDescription;
    // A single-node unit on a node with its own executor starts there as a FORK unit would here.
    const candidate =
      (placedMethod === 'SSH' || placedMethod === 'SRUN') && slots.length === 1 && !d.mpi
        ? this.ctx.nodeSpawners?.get(slots[0]?.node ?? -1)
        : undefined;
    const onNode = candidate?.usable ? candidate : undefined;
    const method: Method = onNode ? 'FORK' : placedMethod;
    const dir = path.join(this.ctx.sandbox, unit.uid);
    const cores = slots.reduce((n, s) => n + s.cores.length, 0);
    const gpus = slots[0]?.gpus ?? [];
    const rpEnv: Record<string, string> = {
      RP_SESSION_ID: this.ctx.sessionId,
      RP_PILOT_ID: this.ctx.pilotId,
      RP_UNIT_ID: unit.uid,
      RP_TASK_ID: unit.uid,
      RP_UNIT_NAME: unit.name ?? '',
      RP_UNIT_SANDBOX: dir,
      RP_PILOT_SANDBOX: this.ctx.sandbox,
      RP_RESOURCE: this.ctx.resource ?? '',
      RP_CORES: String(cores),
      RP_GPUS: String(slots.reduce((n, s) => n + s.gpus.length, 0)),
    };
    if (this.ctx.hasGpus) for (const v of this.ctx.gpuEnv) rpEnv[v] = gpus.join(',');
    for (const k of Object.keys(d.environment ?? {}))
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
        throw new Error(`environment: '${k}' is not a shell variable name, so it cannot be exported`);
    const script = launchScript({
      uid: unit.uid,
      sandbox: dir,
      stdout: d.stdout ?? 'STDOUT',
      stderr: d.stderr ?? 'STDERR',
      rpEnv,
      env: d.environment ?? {},
      preExec: d.preExec ?? [],
      executable: d.executable,
      arguments: d.arguments ?? [],
      postExec: d.postExec ?? [],
      method,
      mpi: d.mpi === true,
      slots,
      flavor: this.ctx.methods.mpiFlavor,
      nodeOffsets: this.ctx.nodeOffsets,
      ...(this.ctx.methods.srunMpi ? { srunMpi: this.ctx.methods.srunMpi } : {}),
    });
    // Through the spawner (not for SSH: the agent reads ssh's output), the spawner's child makes the
    // sandbox and writes launch.sh; the agent makes it only to stage inputs into it first.
    const helper = onNode ?? (method === 'SSH' ? undefined : this.ctx.spawner);
    let made = false;
    if (!helper || d.inputStaging?.length) {
      await mkdirAsync(dir);
      made = true;
    }
    if (d.inputStaging?.length) {
      // The unit is in STAGING_INPUT (its claim): its inputs are staged before the launch script runs.
      try {
        await runDirectives(d.inputStaging, 'input', this.places(unit, dir));
      } catch (err) {
        if (!(err instanceof StagingError)) throw err;
        this.finish(unit, slots, 'Failed', undefined, err.message);
        return;
      }
      if (entry.cancelled) {
        this.finish(unit, slots, 'Canceled', undefined, 'cancelled');
        return;
      }
    }
    const scriptFile = path.join(dir, 'launch.sh');
    if (!helper) await writeAsync(scriptFile, script);
    const execLocations = [...new Set(slots.map((s) => s.name))];
    const announced = this.writeAhead(unit, {
      uid: unit.uid,
      lease: unit.lease ?? '',
      time: new Date().toISOString(),
      sandbox: dir,
      execLocations,
    });
    let armed = announced === 'armed';
    const answer = announced && announced !== 'armed' ? await announced : undefined;
    if (answer === 'armed') armed = true;
    if (answer === false) {
      // Cancelled, rescheduled or its lease returned meanwhile: the control plane has its state; give the
      // slots back unrun.
      this.running.delete(unit.uid);
      this.onExit(unit.uid, slots);
      return;
    }
    if (entry.cancelled) {
      this.finishKilled(unit, slots, entry);
      return;
    }
    // When the script would only export and exec the command with nothing for bash to expand (FORK, no
    // pre/post_exec, no `$`, backtick or backslash in any word or value), the command is exec'd directly
    // with the same environment, directory and output files: the same effect without a bash per unit,
    // which is most of a null unit's cost. launch.sh is written all the same, to rerun by hand.
    const words = [d.executable, ...(d.arguments ?? []), ...Object.values(d.environment ?? {})];
    const direct =
      method === 'FORK' && !d.preExec?.length && !d.postExec?.length && !words.some((w) => EXPANDS.test(w));
    const cmd = direct
      ? { file: d.executable, args: d.arguments ?? [] }
      : spawnCommand(method, slots, dir, this.ctx.methods.sshFlags);
    const onSpawn = () => {
      if (announced && !armed) return; // recorded before the spawn: the end is the next write
      const report: UnitReport = {
        uid: unit.uid,
        state: 'Executing',
        time: new Date().toISOString(),
        sandbox: dir,
        execLocations,
      };
      if (!armed) return this.report(report);
      const timer = setTimeout(() => this.releaseStart(entry), HOLD_ARMED_START_MS);
      timer.unref();
      entry.heldStart = { report, timer };
    };
    const cannotExecute = (code: string | undefined, message: string) =>
      // The shell's codes (127 not found, 126 not executable), so users see what a terminal would show.
      this.finish(
        unit,
        slots,
        'Failed',
        code === 'ENOENT' ? 127 : 126,
        `cannot execute ${cmd.file}: ${code ?? message}`,
      );
    const onClose = (code: number | null, signal: NodeJS.Signals | null, sshErr = '') => {
      if (!this.running.has(unit.uid)) return; // already finished through an error
      // A unit killed by a signal may have died with its whole job (the batch system's SIGTERM reaches
      // every process of the job, this agent too): a moment later the agent's own stop decides its report.
      if (signal && !entry.cancelled)
        setTimeout(() => this.ended(unit, slots, method, entry, code, signal, sshErr), SIGNAL_GRACE_MS);
      else this.ended(unit, slots, method, entry, code, signal, sshErr);
    };
    // A node's executor that died since the check above fails the unit through `lost` (its start may be
    // recorded already); the agent's own spawner has the agent to fall back on.
    const spawner = onNode ?? (helper?.usable ? helper : undefined);
    if (spawner) {
      spawner.spawn(
        {
          cwd: dir,
          ...(direct
            ? {
                stdout: path.resolve(dir, d.stdout ?? 'STDOUT'),
                stderr: path.resolve(dir, d.stderr ?? 'STDERR'),
              }
            : {}),
          script: { path: scriptFile, text: script },
          file: cmd.file,
          args: cmd.args,
          // The spawner's environment is the agent's; the script exports these too (see below).
          env: direct ? { ...rpEnv, ...d.environment } : rpEnv,
        },
        {
          spawned: (pid) => {
            entry.pid = pid;
            if (onNode) entry.executor = onNode;
            // Cancelled while the spawner was starting it: the group exists only now.
            if (entry.cancelled) this.kill(entry);
            onSpawn();
          },
          failed: (stage, code) => {
            if (stage === 'exec') cannotExecute(code, code);
            else
              this.finish(
                unit,
                slots,
                'Failed',
                undefined,
                `cannot start unit: ${stageText[stage]} ${dir}: ${code}`,
              );
          },
          exited: (code, signal) => onClose(code, signal),
          lost: (reason) => {
            // Its end can no longer be heard: it is killed (on another node, its spawner killed it when
            // its connection closed), and ends FAILED with the reason.
            if (entry.pid > 0 && !entry.executor) killGroup(entry.pid);
            // Already being killed on purpose (a cancel, the pilot's end): reported as that decided.
            if (entry.cancelled) this.finishKilled(unit, slots, entry);
            else this.finish(unit, slots, 'Failed', undefined, `unit lost: ${reason}`);
          },
        },
      );
      return;
    }
    if (helper && !made) {
      // The spawner died since this launch began: the agent spawns it itself.
      await mkdirAsync(dir);
      await writeAsync(scriptFile, script);
    }
    let outFd: number | undefined;
    let errFd: number | undefined;
    let child: ReturnType<typeof spawn>;
    try {
      if (direct) {
        outFd = openSync(path.resolve(dir, d.stdout ?? 'STDOUT'), 'w');
        errFd = openSync(path.resolve(dir, d.stderr ?? 'STDERR'), 'w');
      }
      // The script sends the unit's output to its files; only ssh's own complaints come back through a pipe.
      child = spawn(cmd.file, cmd.args, {
        cwd: dir,
        // Over SSH, stdout brings the remote session id (the script then writes to the unit's files).
        stdio: direct
          ? ['ignore', outFd, errFd]
          : ['ignore', method === 'SSH' ? 'pipe' : 'ignore', method === 'SSH' ? 'pipe' : 'ignore'],
        detached: true,
        // The script exports these too; giving them to the shell as well marks its process as the unit's
        // from the start (tools find a session's processes by RP_SESSION_ID/RP_UNIT_ID).
        ...(method === 'SSH' ? {} : { env: { ...process.env, ...rpEnv, ...(direct ? d.environment : {}) } }),
      });
    } finally {
      if (outFd !== undefined) closeSync(outFd);
      if (errFd !== undefined) closeSync(errFd);
    }
    entry.pid = child.pid ?? -1;
    let sshOut = '';
    child.stdout?.on('data', (b: Buffer) => {
      if (entry.remote || sshOut.length > 64) return;
      sshOut += b.toString('utf8');
      const m = /^(\d+)\n/.exec(sshOut);
      if (!m) return;
      entry.remote = { node: slots[0]?.name ?? '', sid: Number(m[1]) };
      // Cancelled while ssh was connecting: the session is known only now.
      if (entry.cancelled) this.killRemote(entry);
    });
    let sshErr = '';
    child.stderr?.on('data', (b: Buffer) => {
      if (sshErr.length < 4096) sshErr += b.toString('utf8');
    });
    child.once('error', (err: NodeJS.ErrnoException) => cannotExecute(err.code, err.message));
    child.once('spawn', onSpawn);
    child.once('close', (code, signal) => onClose(code, signal, sshErr));
  }

  /** A started unit's process ended: its report (or output staging first), as its end and kill say. */
  private ended(
    unit: PulledUnit,
    slots: readonly Slot[],
    method: Method,
    entry: Running,
    code: number | null,
    signal: NodeJS.Signals | null,
    sshErr: string,
  ): void {
    const reason =
      method === 'SSH' && code === 255 ? `ssh to ${slots[0]?.name} failed: ${sshErr.trim()}` : undefined;
    if (entry.cancelled) this.finishKilled(unit, slots, entry, code ?? undefined);
    else if (code === 0) this.stageOut(unit, slots, 'Done', 0);
    else
      this.stageOut(
        unit,
        slots,
        'Failed',
        code ?? 128 + (signal ? os.constants.signals[signal] : 0),
        signal ? `killed by ${signal}` : reason,
      );
  }

  /**
   * Output staging after the launch script (RP's agent output stager), then the end: STAGING_OUTPUT is
   * reported only when directives run (a failed unit runs only those without SKIP_FAILED); a directive
   * that fails ends the unit FAILED with the directive and the OS error in its log.
   */
  private stageOut(
    unit: PulledUnit,
    slots: readonly Slot[],
    state: 'Done' | 'Failed',
    exitCode: number,
    reason?: string,
  ): void {
    const todo = directivesToRun(unit.description.outputStaging, state === 'Failed');
    if (todo.length === 0) {
      this.finish(unit, slots, state, exitCode, reason);
      return;
    }
    const entry = this.running.get(unit.uid);
    if (entry) this.releaseStart(entry);
    this.report({ uid: unit.uid, state: 'StagingOutput', time: new Date().toISOString() });
    const dir = path.join(this.ctx.sandbox, unit.uid);
    runDirectives(todo, 'output', this.places(unit, dir)).then(
      () => this.finish(unit, slots, state, exitCode, reason),
      (err: Error) =>
        this.finish(unit, slots, 'Failed', exitCode, reason ? `${reason}; ${err.message}` : err.message),
    );
  }

  /** Where a unit's directives resolve, with the transfer route for its TRANSFER directives. */
  private places(unit: PulledUnit, dir: string): StagingPlaces {
    const call = this.ctx.transfer;
    return {
      pilotSandbox: this.ctx.sandbox,
      unitSandbox: dir,
      ...(call
        ? {
            transfer: {
              uid: unit.uid,
              call,
              input: unit.description.inputStaging ?? [],
              output: unit.description.outputStaging ?? [],
            },
          }
        : {}),
    };
  }

  /**
   * Reports a unit the agent killed (or never started) on purpose as decided: CANCELED, or what the pilot's
   * end says, at once or when the agent knows why it was stopped (SIGTERM, see main.ts).
   */
  private finishKilled(unit: PulledUnit, slots: readonly Slot[], entry: Running, exitCode?: number): void {
    void Promise.resolve(entry.killedAs ?? CANCELLED).then((as) =>
      this.finish(unit, slots, as.state, exitCode, as.reason),
    );
  }

  /** Reports an armed unit's held EXECUTING now (its end or its output staging comes next). */
  private releaseStart(entry: Running): void {
    const held = entry.heldStart;
    if (!held) return;
    clearTimeout(held.timer);
    delete entry.heldStart;
    this.report(held.report);
  }

  /** Reports the unit's end with the tails of its output, then gives its slots back. */
  private finish(
    unit: PulledUnit,
    slots: readonly Slot[],
    state: UnitReport['state'],
    exitCode: number | undefined,
    reason?: string,
  ): void {
    const entry = this.running.get(unit.uid);
    if (!this.running.delete(unit.uid)) return;
    if (entry) this.releaseStart(entry);
    const d = unit.description;
    const dir = path.join(this.ctx.sandbox, unit.uid);
    const time = new Date().toISOString();
    // Slots go back before the report: the next unit can start while this one's report is batched.
    this.onExit(unit.uid, slots);
    const report: UnitReport = {
      uid: unit.uid,
      state,
      time,
      ...(exitCode !== undefined ? { exitCode } : {}),
      stdout: readTail(path.resolve(dir, d.stdout ?? 'STDOUT')),
      stderr: readTail(path.resolve(dir, d.stderr ?? 'STDERR')) || (reason ?? ''),
      ...(reason ? { reason } : {}),
    };
    if (!d.cleanup) {
      this.report(report);
      return;
    }
    // RP's `cleanup`: the sandbox goes after output staging (its tails are read above), before the end
    // is reported, so a unit seen final has no sandbox left.
    rm(dir, { recursive: true, force: true }, (err) => {
      if (err) report.reason = `${reason ? `${reason}; ` : ''}cleanup of ${dir} failed: ${err.message}`;
      this.report(report);
    });
  }

  /**
   * Kills a running unit's process group; its report says CANCELED (or `as`). Unknown uids are ignored.
   */
  cancel(uid: string, as?: KilledAs | Promise<KilledAs>): boolean {
    const entry = this.running.get(uid);
    if (!entry) return false;
    entry.cancelled = true;
    // The first decision holds: a later cancelAll (the agent's end) does not override a pending one.
    if (as && !entry.killedAs) entry.killedAs = as;
    if (entry.pid < 0) return true; // not spawned yet: launch() sees the flag
    this.kill(entry);
    return true;
  }

  /** Kills a started unit wherever it runs. */
  private kill(entry: Running): void {
    // On another node's executor: through it. Over SSH the local ssh lives until the remote session ends:
    // kill that first, the local ssh after.
    if (entry.executor) entry.executor.kill(entry.pid);
    else if (entry.remote) this.killRemote(entry);
    else killGroup(entry.pid);
  }

  /** Kills a unit's session on its remote node over SSH, then its local ssh. */
  private killRemote(entry: Running): void {
    if (!entry.remote) return;
    const { file, args } = remoteKillCommand(entry.remote.node, entry.remote.sid, this.ctx.methods.sshFlags);
    const killer = spawn(file, args, { stdio: 'ignore' });
    const done = () => killGroup(entry.pid);
    killer.once('close', done);
    killer.once('error', done);
  }

  /**
   * Kills every running unit (pilot end; the agent waits a few seconds for their reports), reported
   * CANCELED, or as `as` says (the walltime's units are FAILED: they did not finish); `as` may be a
   * promise, when the units must die now and the reason is known only later (SIGTERM, see main.ts).
   */
  cancelAll(as?: KilledAs | Promise<KilledAs>): void {
    for (const uid of [...this.running.keys()]) this.cancel(uid, as);
  }
}

/** SIGKILL to a process group; one already gone reports through its exit event. */
function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
