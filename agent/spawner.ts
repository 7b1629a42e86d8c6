/**
 * The persistent spawner (RP's SHELL spawner idea, issue 14): one small long-lived process per node that
 * starts the agent's units, so that no unit is forked from the agent's large heap (fork copies its page
 * tables, which grow with the heap) and no per-unit file work runs on the agent's loop. A tiny C program
 * (spawner-source.ts), compiled on the node when the agent starts where a C compiler exists; without one
 * the agent spawns with Node itself (executor.ts), as it does for SSH units, whose output it must read.
 *
 * Per unit the spawner's child makes the sandbox directory, writes launch.sh, opens the output files,
 * starts a new session (the unit's process group is its pid, as with Node's `detached`) and execs; the
 * spawner reports the pid, or why the unit could not start, and later its exit.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SPAWNER_C } from './spawner-source.ts';

/** One unit for the spawner. Paths are absolute. */
export interface SpawnRequest {
  /** The unit's sandbox: made when missing, and the unit's working directory. */
  cwd: string;
  /** Output files (created, truncated); undefined: /dev/null (a launch script redirects itself). */
  stdout?: string;
  stderr?: string;
  /** Written (mode 0700) before the exec: the unit's launch.sh. */
  script?: { path: string; text: string };
  file: string;
  args: readonly string[];
  /** Variables set on top of the spawner's environment, which is the agent's. */
  env: Readonly<Record<string, string>>;
}

/** What the spawner tells about one unit: started (then ended) or not started; or the spawner died. */
export interface SpawnEvents {
  spawned(pid: number): void;
  /** Not started: `stage` says which step failed (see {@link SpawnStage}), `code` the errno name. */
  failed(stage: SpawnStage, code: string): void;
  exited(code: number | null, signal: NodeJS.Signals | null): void;
  /** The spawner died: a started unit's end can no longer be known, an unstarted one never starts. */
  lost(reason: string): void;
}

/** The step of a start that failed, as the C child numbers it. */
export type SpawnStage = 'sandbox' | 'script' | 'output' | 'exec' | 'spawner';

const STAGES: readonly SpawnStage[] = ['spawner', 'sandbox', 'script', 'output', 'exec'];

const ERRNO_NAMES = new Map(Object.entries(os.constants.errno).map(([k, v]) => [v, k]));
const SIGNAL_NAMES = new Map(Object.entries(os.constants.signals).map(([k, v]) => [v, k as NodeJS.Signals]));

/** How long the compiler and the spawner's first line may take before the agent spawns with Node. */
const COMPILE_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 10_000;
/** A spawner on another node comes up through ssh or a job step, which may queue briefly for the step. */
const REMOTE_READY_TIMEOUT_MS = 30_000;

/** A running spawner process and the units it has been handed. */
export class HelperSpawner {
  private nextId = 1;
  /** Handed over, not yet started. */
  private readonly pending = new Map<number, SpawnEvents>();
  /** Started, not yet ended. */
  private readonly running = new Map<number, SpawnEvents>();
  private partial = '';
  private deadReason: string | undefined;
  private corked = false;

  private constructor(
    private readonly child: ChildProcess,
    /** The spawner program (on a shared file system, so other nodes can run it too). */
    readonly program: string,
    /** The node it runs on when that is not the agent's (then pids are that node's, see {@link kill}). */
    readonly node?: string,
  ) {
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (s: string) => this.read(s));
    child.once('exit', (code, signal) => this.died(`spawner exited (${signal ?? `code ${code}`})`));
    child.stdin?.on('error', (err: Error) => this.died(`spawner pipe: ${err.message}`));
  }

  /**
   * Starts the spawner for the pilot sandbox `dir`: the one built for this source and machine type in
   * the session's folder (`dir`'s parent) when a pilot of the session built it, else compiled into `dir`
   * (then shared there, by an atomic rename). Undefined (with the reason logged) when there is no
   * compiler, the compile fails or the program does not come up: the agent then spawns with Node.
   */
  static async start(dir: string, log: (msg: string) => void): Promise<HelperSpawner | undefined> {
    const cc = process.env.CC || 'cc';
    const key = createHash('sha256')
      .update(`${SPAWNER_C}\0${os.platform()}\0${os.arch()}\0${cc}`)
      .digest('hex')
      .slice(0, 16);
    const shared = path.join(path.dirname(dir), `.sortie-spawner-${key}`);
    if (existsSync(shared)) {
      const s = await HelperSpawner.run(shared, log);
      if (s) return s;
    }
    const src = path.join(dir, 'sortie-spawner.c');
    const bin = path.join(dir, 'sortie-spawner');
    try {
      writeFileSync(src, SPAWNER_C);
      await new Promise<void>((resolve, reject) =>
        execFile(cc, ['-O2', '-o', bin, src], { timeout: COMPILE_TIMEOUT_MS }, (err, _out, stderr) =>
          err
            ? reject(new Error(`${cc}: ${stderr.trim().split('\n').slice(-2).join(' | ') || err.message}`))
            : resolve(),
        ),
      );
    } catch (err) {
      log(
        `spawner: not built (${err instanceof Error ? err.message : String(err)}); units are spawned by the agent`,
      );
      return undefined;
    }
    const s = await HelperSpawner.run(bin, log);
    if (s) {
      // Shared for the session's next pilots; a copy renamed into place, so no pilot sees half a file.
      const tmp = `${shared}.${process.pid}`;
      try {
        copyFileSync(bin, tmp);
        chmodSync(tmp, 0o755);
        renameSync(tmp, shared);
      } catch {
        rmSync(tmp, { force: true });
      }
    }
    return s;
  }

  /**
   * Starts `program` (this node's spawner, see {@link program}) on another node of the allocation with
   * `via`, the command that runs it there through the pilot's task launch method (launch-methods.ts
   * `executorCommand`: `ssh node … -k`, `srun … --nodelist=node … -k`), so that the node's units start there
   * with no ssh or job step each (the per-node executor of issue 14). Undefined (the reason logged) when it
   * does not come up: units for that node then go through the launch method, one by one.
   */
  static async onNode(
    program: string,
    node: string,
    via: { file: string; args: readonly string[] },
    log: (msg: string) => void,
  ): Promise<HelperSpawner | undefined> {
    return HelperSpawner.run(program, log, { node, via });
  }

  /** Starts the spawner program `bin` (here, or on a node `via` a launcher) and waits for its ready line. */
  private static async run(
    bin: string,
    log: (msg: string) => void,
    remote?: { node: string; via: { file: string; args: readonly string[] } },
  ): Promise<HelperSpawner | undefined> {
    // Its own session: a SIGTERM to the agent's process group (a pilot's cancel, the batch system's
    // signal to the job) reaches the agent, which then decides the units' ends; the spawner ends when the
    // agent closes its input, or dies.
    const child = remote
      ? spawn(remote.via.file, [...remote.via.args], {
          stdio: ['pipe', 'pipe', 'inherit'],
          detached: true,
        })
      : spawn(bin, [], { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
    const ready = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(
        () => resolve('no ready line'),
        remote ? REMOTE_READY_TIMEOUT_MS : READY_TIMEOUT_MS,
      );
      child.once('error', (err) => resolve(err.message));
      child.once('exit', (code) => resolve(`exited with ${code}`));
      child.stdout?.once('data', (b: Buffer) => {
        clearTimeout(timer);
        const line = b.toString('utf8');
        resolve(line.startsWith('R ') ? undefined : `said ${JSON.stringify(line)}`);
      });
    });
    if (ready !== undefined) {
      child.kill('SIGKILL');
      log(`spawner: ${bin}${remote ? ` on ${remote.node}` : ''} did not start (${ready})`);
      return undefined;
    }
    if (remote) {
      log(`spawner: ${bin} on ${remote.node} (via ${remote.via.file}) starts that node's units`);
      return new HelperSpawner(child, bin, remote.node);
    }
    log(`spawner: ${bin} (pid ${child.pid}) starts the units`);
    return new HelperSpawner(child, bin);
  }

  /**
   * Sends `signal` to the process group of a unit it started (`pid` as its spawned event gave it): the
   * only way to reach a unit on another node without a connection of its own. Nothing when it is dead.
   */
  kill(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.deadReason !== undefined || pid <= 1) return;
    this.write(`K\0${pid}\0${os.constants.signals[signal]}\0`);
  }

  /** The spawner's process id (of its ssh or srun when it runs on another node). */
  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** False once the spawner has died: units are then spawned by the agent. */
  get usable(): boolean {
    return this.deadReason === undefined;
  }

  /**
   * Hands a unit to the spawner; its events follow. Throws (nothing is sent) when a field holds a NUL
   * byte, which no path, argument or variable can carry.
   */
  spawn(req: SpawnRequest, events: SpawnEvents): void {
    const env = Object.entries(req.env).map(([k, v]) => `${k}=${v}`);
    const fields = [
      req.cwd,
      req.stdout ?? '',
      req.stderr ?? '',
      req.script?.path ?? '',
      req.script?.text ?? '',
      String(req.args.length + 1),
      req.file,
      ...req.args,
      String(env.length),
      ...env,
    ];
    if (fields.some((f) => f.includes('\0')))
      throw new Error('a path, argument or environment value holds a NUL byte');
    if (this.deadReason !== undefined) {
      events.lost(this.deadReason);
      return;
    }
    const id = this.nextId++;
    this.pending.set(id, events);
    this.write(`${id}\0${fields.join('\0')}\0`);
  }

  /** Every record of one turn of the event loop goes to the spawner in one write. */
  private write(record: string): void {
    const stdin = this.child.stdin as NonNullable<ChildProcess['stdin']>;
    if (!this.corked) {
      this.corked = true;
      stdin.cork();
      process.nextTick(() => {
        this.corked = false;
        stdin.uncork();
      });
    }
    stdin.write(record);
  }

  private read(s: string): void {
    const lines = (this.partial + s).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const [kind, a, b, c] = line.split(' ');
      const x = Number(a);
      const y = Number(b);
      if (kind === 'S') {
        const ev = this.pending.get(x);
        this.pending.delete(x);
        if (!ev) continue;
        this.running.set(y, ev);
        ev.spawned(y);
      } else if (kind === 'F') {
        const ev = this.pending.get(x);
        this.pending.delete(x);
        ev?.failed(STAGES[Number(c)] ?? 'spawner', ERRNO_NAMES.get(y) ?? `errno ${y}`);
      } else if (kind === 'E') {
        const ev = this.running.get(x);
        this.running.delete(x);
        const sig = Number(c);
        ev?.exited(y >= 0 ? y : null, sig > 0 ? (SIGNAL_NAMES.get(sig) ?? 'SIGKILL') : null);
      }
    }
  }

  private died(reason: string): void {
    if (this.deadReason !== undefined) return;
    this.deadReason = reason;
    const all = [...this.pending.values(), ...this.running.values()];
    this.pending.clear();
    this.running.clear();
    for (const ev of all) ev.lost(reason);
  }

  /** Ends the spawner (the agent's end): closing its input ends it; units still running are not touched. */
  close(): void {
    this.deadReason ??= 'spawner closed';
    this.child.stdin?.end();
  }
}
