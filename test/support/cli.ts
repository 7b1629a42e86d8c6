/**
 * Runs the real `sortie` CLI as a user does (a fresh Node process running client/cli.ts through tsx),
 * with its own environment, and collects what it prints and how it exits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

/** One finished CLI run. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A started CLI process: its output so far, and its end. */
export interface CliProcess {
  child: ChildProcess;
  output: () => string;
  done: Promise<CliResult>;
}

/** Starts `sortie ARGS…` with `env` added to a clean copy of this process's environment. */
export function startCli(args: string[], env: Record<string, string | undefined> = {}): CliProcess {
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['SORTIE_API_URL', 'SORTIE_SESSION', 'SORTIE_TOKEN', 'SORTIE_DIR']) delete childEnv[k];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) childEnv[k] = v;
  const child = spawn(
    process.execPath,
    [path.join(root, 'node_modules/tsx/dist/cli.mjs'), 'client/cli.ts', ...args],
    {
      cwd: root,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, output: () => stdout, done };
}

/** Runs `sortie ARGS…` to its end. */
export function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return startCli(args, env).done;
}
