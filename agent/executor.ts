/**
 * Runs units as local processes (RP's FORK launch method) on the agent's cores.
 *
 * A unit gets its own sandbox `<pilot sandbox>/<uid>`, stdout/stderr files there, the RP_* variables
 * and its own environment. Without pre/post_exec the executable is spawned directly (no shell: the
 * cheapest spawn); with them, a small `unit.sh` runs pre_exec, the command, then post_exec and exits
 * with the command's code, as RP's launch script does.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PulledUnit, UnitReport } from './api.ts';

/** What the executor needs from the pilot. */
export interface ExecutorContext {
  sessionId: string;
  pilotId: string;
  sandbox: string;
  resource?: string;
}

const TAIL_BYTES = 4096;

/** Reads the head of a file, up to TAIL_BYTES (RP keeps stdout/stderr in the unit record). */
function head(file: string): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const buf = Buffer.alloc(TAIL_BYTES);
    const n = readSync(fd, buf, 0, TAIL_BYTES, 0);
    return buf.subarray(0, n).toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Quotes one word for /bin/sh. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Spawns units and reports their states; cancel kills the unit's process group. */
export class Executor {
  private readonly running = new Map<string, { pid: number; cancelled: boolean }>();
  private readonly host = os.hostname();

  constructor(
    private readonly ctx: ExecutorContext,
    private readonly report: (r: UnitReport) => void,
    private readonly onExit: (uid: string, cores: number) => void,
  ) {}

  get active(): number {
    return this.running.size;
  }

  /** Starts one unit; its EXECUTING report goes out at spawn, its final one at exit. */
  start(unit: PulledUnit): void {
    const d = unit.description;
    const cores = d.cores ?? 1;
    const dir = path.join(this.ctx.sandbox, unit.uid);
    const now = () => new Date().toISOString();
    let outFd: number | undefined;
    let errFd: number | undefined;
    const outFile = path.join(dir, d.stdout ?? 'STDOUT');
    const errFile = path.join(dir, d.stderr ?? 'STDERR');
    const finish = (state: UnitReport['state'], exitCode: number | undefined, reason?: string) => {
      this.running.delete(unit.uid);
      this.report({
        uid: unit.uid,
        state,
        time: now(),
        ...(exitCode !== undefined ? { exitCode } : {}),
        stdout: head(outFile),
        stderr: head(errFile) || (reason ?? ''),
        ...(reason ? { reason } : {}),
      });
      this.onExit(unit.uid, cores);
    };
    try {
      mkdirSync(dir, { recursive: true });
      outFd = openSync(outFile, 'w');
      errFd = openSync(errFile, 'w');
      const env = {
        ...process.env,
        RP_SESSION_ID: this.ctx.sessionId,
        RP_PILOT_ID: this.ctx.pilotId,
        RP_UNIT_ID: unit.uid,
        RP_TASK_ID: unit.uid,
        RP_UNIT_NAME: unit.name ?? '',
        RP_UNIT_SANDBOX: dir,
        RP_PILOT_SANDBOX: this.ctx.sandbox,
        RP_RESOURCE: this.ctx.resource ?? '',
        RP_CORES: String(cores),
        ...(d.environment ?? {}),
      };
      let file = d.executable;
      let args = d.arguments ?? [];
      if (d.preExec?.length || d.postExec?.length) {
        const script = [
          '#!/bin/sh',
          ...(d.preExec ?? []),
          [d.executable, ...(d.arguments ?? [])].map(shellQuote).join(' '),
          'RP_RETVAL=$?',
          ...(d.postExec ?? []),
          'exit $RP_RETVAL',
          '',
        ].join('\n');
        writeFileSync(path.join(dir, 'unit.sh'), script, { mode: 0o700 });
        file = '/bin/sh';
        args = [path.join(dir, 'unit.sh')];
      }
      const child = spawn(file, args, { cwd: dir, env, stdio: ['ignore', outFd, errFd], detached: true });
      const entry = { pid: child.pid ?? -1, cancelled: false };
      this.running.set(unit.uid, entry);
      child.once('error', (err: NodeJS.ErrnoException) => {
        // ENOENT/EACCES: the shell's codes, so users see what they would see in a terminal.
        const code = err.code === 'ENOENT' ? 127 : 126;
        finish('Failed', code, `cannot execute ${d.executable}: ${err.code ?? err.message}`);
      });
      child.once('spawn', () => {
        this.report({
          uid: unit.uid,
          state: 'Executing',
          time: now(),
          sandbox: dir,
          execLocations: [this.host],
        });
      });
      child.once('exit', (code, signal) => {
        if (!this.running.has(unit.uid)) return; // already finished through 'error'
        if (entry.cancelled) finish('Canceled', code ?? undefined, 'cancelled');
        else if (code === 0) finish('Done', 0);
        else
          finish(
            'Failed',
            code ?? 128 + (signal ? os.constants.signals[signal] : 0),
            signal ? `killed by ${signal}` : undefined,
          );
      });
    } catch (err) {
      finish('Failed', undefined, `cannot start unit: ${(err as Error).message}`);
    } finally {
      if (outFd !== undefined) closeSync(outFd);
      if (errFd !== undefined) closeSync(errFd);
    }
  }

  /** Kills a running unit's process group; its report says CANCELED. Unknown uids are ignored. */
  cancel(uid: string): boolean {
    const entry = this.running.get(uid);
    if (!entry || entry.pid < 0) return false;
    entry.cancelled = true;
    try {
      process.kill(-entry.pid, 'SIGKILL');
    } catch {
      // already gone: its exit event reports it
    }
    return true;
  }

  /** Kills every running unit (pilot end). */
  cancelAll(): void {
    for (const uid of [...this.running.keys()]) this.cancel(uid);
  }
}
