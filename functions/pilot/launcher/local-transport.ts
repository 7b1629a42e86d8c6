/**
 * The shell of this host as a launcher transport: what an SSH connection gives the batch launcher (run a
 * command, make a directory, write a file with an exact mode), done locally. The endpoint runs the same
 * job-manager adapters as the SSH launcher through it, inside the user's own login on the login node.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import type { ExecOptions, ExecResult } from './ssh.ts';
import { SshTimeout } from './ssh-errors.ts';

/** What the batch launcher needs of a login: an SSH connection, or this host's shell. */
export interface LauncherTransport {
  /** `user@host`, for messages. */
  readonly where: string;
  exec(cmd: string, opts?: ExecOptions): Promise<ExecResult>;
  mkdirp(path: string, mode?: number): Promise<void>;
  writeFile(path: string, data: string | Buffer, mode?: number): Promise<void>;
}

const MAX_OUTPUT = 1 << 20;

/** Commands in `bash -c`, as sshd runs them for a login whose shell is bash; files through fs. */
export class LocalTransport implements LauncherTransport {
  readonly where = `${userInfo().username}@${hostname()} (local)`;

  exec(cmd: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/bash', ['-c', cmd], { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      const take = (into: Buffer[]) => (d: Buffer) => {
        if (size < MAX_OUTPUT) into.push(d);
        size += d.length;
      };
      child.stdout.on('data', take(out));
      child.stderr.on('data', take(err));
      const timeoutMs = opts.timeoutMs ?? 60_000;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new SshTimeout(`command on ${this.where} did not finish within ${timeoutMs} ms`));
      }, timeoutMs);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({
          code,
          ...(signal ? { signal } : {}),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        });
      });
      // A command that does not read its stdin must not fail the write.
      child.stdin.on('error', () => {});
      child.stdin.end(opts.stdin ?? '');
    });
  }

  async mkdirp(path: string, mode = 0o700): Promise<void> {
    await mkdir(path, { recursive: true, mode });
  }

  async writeFile(path: string, data: string | Buffer, mode = 0o600): Promise<void> {
    // Write, then chmod: the umask must not loosen or tighten what the caller asked for.
    await writeFile(path, data, { mode });
    await chmod(path, mode);
  }
}
