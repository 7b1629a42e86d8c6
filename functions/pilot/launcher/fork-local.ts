/**
 * The `local.localhost` launcher: the agent runs as a detached process on the machine that runs the
 * launch function (RP's `fork://localhost`). No SSH, no batch system; the PID is the job id.
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BadParameter } from '../../../core/errors.ts';
import { isSystemPath, underRoots } from '../../../core/resources.ts';
import type { JobStatus, Launcher, LaunchRequest, LaunchResult } from './types.ts';

/** Expands `$HOME`/`~` in a sandbox root, the way a login shell would. */
export function expandHome(p: string): string {
  return p.replace(/^~(?=\/|$)/, os.homedir()).replace(/\$HOME|\$\{HOME\}/g, os.homedir());
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill(0); it is finished all the same.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * True while `pid` runs this sandbox's agent: its command line names the sandbox's agent.json. PIDs are
 * reused (32,768 of them by default: a busy machine wraps within minutes), so a pid alone could name an
 * unrelated process group by the time a check or a cancel comes, and a cancel would signal it.
 */
function ours(pid: number, sandbox: string): boolean {
  if (!(pid > 0) || !alive(pid)) return false;
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return args.includes(path.join(sandbox, 'agent.json'));
  } catch {
    return false;
  }
}

/** Kills the process groups of every process of this user that runs a unit of the given pilot. */
export function killPilotUnits(sessionId: string, pilotId: string): number {
  const marks = [`RP_SESSION_ID=${sessionId}`, `RP_PILOT_ID=${pilotId}`];
  let killed = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let environ: string[];
    try {
      environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
    } catch {
      continue; // gone, or not ours
    }
    if (!marks.every((m) => environ.includes(m))) continue;
    try {
      process.kill(-Number(entry), 'SIGKILL');
      killed++;
    } catch {
      try {
        process.kill(Number(entry), 'SIGKILL');
        killed++;
      } catch {
        // gone meanwhile
      }
    }
  }
  return killed;
}

/** Last `lines` lines of a file ('' if missing). */
export function tailFile(file: string, lines: number): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(-lines).join('\n');
}

/** Forks agents on this host. */
export class ForkLocalLauncher implements Launcher {
  constructor(
    private readonly sandboxRoot = '$HOME/sortie.sandbox',
    /** Where a pilot's own sandbox may lie (the resource's validRoots; empty: anywhere). */
    private readonly validRoots: readonly string[] = [],
  ) {}

  async launch(req: LaunchRequest): Promise<LaunchResult> {
    // The same refusal as RP's fork://localhost (and Sortie's SSH launcher): a sandbox outside the valid
    // roots fails the pilot with the reason instead of starting an agent. (A pilot bigger than this host
    // is the agent's to refuse, from the allocation it finds, as on every resource.)
    const given = req.description.sandbox;
    if (
      given !== undefined &&
      this.validRoots.length &&
      !underRoots(expandHome(given), this.validRoots.map(expandHome))
    )
      throw new BadParameter(`sandbox '${given}' is not under one of ${this.validRoots.join(', ')}`, {
        obj: req.pilotId,
      });
    const root = path.resolve(expandHome(given ?? this.sandboxRoot));
    // The API refuses these at submit; this guards any other way in (mkdirSync under /proc never returns).
    if (isSystemPath(root))
      throw new BadParameter(`sandbox '${root}' is under a kernel or device file system`, {
        obj: req.pilotId,
      });
    const sandbox = path.join(root, req.sessionId, req.pilotId);
    mkdirSync(sandbox, { recursive: true, mode: 0o700 });
    const bundle = path.join(sandbox, 'agent.cjs');
    copyFileSync(req.agentBundle, bundle);
    const config = path.join(sandbox, 'agent.json');
    writeFileSync(config, JSON.stringify({ ...req.agentConfig, sandbox }, null, 2), { mode: 0o600 });
    const out = openSync(path.join(sandbox, 'agent.out'), 'a');
    const err = openSync(path.join(sandbox, 'agent.err'), 'a');
    try {
      // Only what a login shell would give: the agent must not inherit the control plane's AWS settings.
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: os.homedir(),
        LANG: process.env.LANG ?? 'C.UTF-8',
      };
      const child = spawn(process.execPath, [bundle, config], {
        cwd: sandbox,
        detached: true,
        stdio: ['ignore', out, err],
        env,
      });
      const pid = await new Promise<number>((resolve, reject) => {
        child.once('spawn', () => resolve(child.pid ?? -1));
        child.once('error', reject);
      });
      child.unref();
      return { jobId: String(pid), sandbox };
    } finally {
      closeSync(out);
      closeSync(err);
    }
  }

  async cancel(req: LaunchRequest, job: LaunchResult): Promise<void> {
    const pid = Number(job.jobId);
    if (ours(pid, job.sandbox)) {
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        // gone meanwhile
      }
      // Give the agent a moment to report and kill its units, then make sure.
      for (let i = 0; i < 30 && ours(pid, job.sandbox); i++) await new Promise((r) => setTimeout(r, 100));
      if (ours(pid, job.sandbox)) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
    // Units run in their own process groups (so that one can be cancelled alone): an agent that died
    // without killing them (SIGKILL, OOM) leaves them running. A batch system would end them with the
    // job; here the pilot's end does, found by the RP_* variables the agent gave them.
    killPilotUnits(req.sessionId, req.pilotId);
  }

  async status(_req: LaunchRequest, job: LaunchResult): Promise<JobStatus> {
    const pid = Number(job.jobId);
    return ours(pid, job.sandbox)
      ? { state: 'running', detail: `pid ${pid}` }
      : { state: 'finished', detail: `pid ${pid} not running` };
  }

  async tail(_req: LaunchRequest, job: LaunchResult, lines: number): Promise<string> {
    const out = tailFile(path.join(job.sandbox, 'agent.out'), lines);
    const err = tailFile(path.join(job.sandbox, 'agent.err'), lines);
    return [out && `agent.out:\n${out}`, err && `agent.err:\n${err}`].filter(Boolean).join('\n');
  }
}
