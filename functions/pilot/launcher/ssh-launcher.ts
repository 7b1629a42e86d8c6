/**
 * The Launcher for SSH resources: over one (cached) SSH connection it creates the pilot sandbox, uploads
 * the agent bundle, `agent.json` (0600, it holds the pilot secret) and the job script over SFTP, submits
 * with the resource's batch system and parses the job id; later it queries, cancels and tails the job.
 */

import { readFile } from 'node:fs/promises';
import { BadParameter, NoSuccess } from '../../../core/errors.ts';
import { type ResourceConfig, underRoots } from '../../../core/resources.ts';
import { jobManagerFor } from './jobmanagers/index.ts';
import { AGENT_FILE, type BatchJobSpec, CONFIG_FILE, type JobManager, shq } from './jobmanagers/types.ts';
import type { LauncherTransport } from './local-transport.ts';
import { orphanSweepEverywhere } from './orphans.ts';
import { getSshConnection, type HostKeyStore, type SshConnectOptions } from './ssh.ts';
import { submitOnceCommand } from './submit-once.ts';
import type { JobStatus, Launcher, LaunchRequest, LaunchResult } from './types.ts';

/** Tuning for {@link SshLauncher}. */
export interface SshLauncherOptions {
  /** Where trust-on-first-use host keys are kept (default: in memory, per process). */
  hostKeyStore?: HostKeyStore;
  /** Refuse hosts whose key is neither pinned nor recorded (default false: trust on first use). */
  strictHostKeys?: boolean;
  /** Deadline for each remote command (default 60 s). */
  commandTimeoutMs?: number;
  /** Close a cached connection after this long unused (default 30 s). */
  idleMs?: number;
  /**
   * Run the commands through this instead of an SSH login (the endpoint: this host's own shell, inside
   * the user's login on the site's login node). The resource then needs no `ssh` schema.
   */
  transport?: LauncherTransport;
}

// Sandboxes end up unquoted in batch directives and are expanded by the remote shell once: allow variables
// and ~, but nothing that could run a command or split a word.
const SAFE_PATH = /^[\w.~/${}+-]+$/;
const SAFE_ID = /^[\w.-]+$/;

/** How long the first job check of a login waits for others to join its query. */
const STATUS_WINDOW_MS = 50;
/** Open status queries by login and batch system (see SshLauncher.status). */
const statusBatches = new Map<string, { ids: Set<string>; found: Promise<Map<string, JobStatus>> }>();

/** Starts agents through a batch system (or fork) on an SSH-reachable resource. */
export class SshLauncher implements Launcher {
  private readonly jm: JobManager;

  constructor(
    /** The resource's configuration; its `schemas.ssh` says where to log in. */
    readonly config: ResourceConfig,
    private readonly options: SshLauncherOptions = {},
  ) {
    this.jm = jobManagerFor(config.jobManager);
  }

  async launch(req: LaunchRequest): Promise<LaunchResult> {
    for (const [name, v] of [
      ['sessionId', req.sessionId],
      ['pilotId', req.pilotId],
    ] as const)
      if (!SAFE_ID.test(v))
        throw new BadParameter(`${name} '${v}' may only hold letters, digits, '.', '_', '-'`);
    for (const arg of this.config.mandatoryArgs)
      if (req.description[arg] === undefined)
        throw new BadParameter(`resource '${req.resource}' requires '${arg}' in the pilot description`, {
          obj: req.pilotId,
        });
    const root = req.description.sandbox ?? this.config.defaultSandbox;
    if (!SAFE_PATH.test(root))
      throw new BadParameter(`sandbox '${root}' may only hold path characters and $VARIABLES`, {
        obj: req.pilotId,
      });
    if (req.description.sandbox && this.config.validRoots.length && !underRoots(root, this.config.validRoots))
      throw new BadParameter(`sandbox '${root}' is not under one of ${this.config.validRoots.join(', ')}`, {
        obj: req.pilotId,
      });
    const bundle = await readFile(req.agentBundle);
    const conn = await this.connect(req);
    const sandbox = `${await this.expand(conn, root)}/${req.sessionId}/${req.pilotId}`;
    await conn.mkdirp(sandbox, 0o700);
    await conn.writeFile(`${sandbox}/${AGENT_FILE}`, bundle, 0o600);
    await conn.writeFile(
      `${sandbox}/${CONFIG_FILE}`,
      JSON.stringify({ ...req.agentConfig, sandbox }, null, 2),
      0o600,
    );
    const spec = this.spec(req, sandbox);
    await conn.writeFile(`${sandbox}/${this.jm.scriptName}`, this.jm.script(spec), 0o700);
    // Safe to retry: a Launch retried after the connection dropped finds the job its first attempt made.
    const r = await conn.exec(submitOnceCommand(this.jm, sandbox, spec.jobName), { timeoutMs: this.timeout });
    const jobId = r.code === 0 ? this.jm.parseSubmit(r.stdout) : undefined;
    if (!jobId)
      throw new NoSuccess(
        `${this.jm.name} submission on ${conn.where} failed (exit ${r.code}): ${tailOf(r.stderr || r.stdout)}`,
        { obj: req.pilotId },
      );
    return { jobId, sandbox };
  }

  async cancel(req: LaunchRequest, job: LaunchResult): Promise<void> {
    const conn = await this.connect(req);
    const r = await conn.exec(this.jm.cancelCommand(job.jobId, job.sandbox), { timeoutMs: this.timeout });
    // Whatever the cancel said: units a dead agent left behind outlive its job, on any of its nodes
    // (see orphans.ts).
    await conn.exec(orphanSweepEverywhere(req.sessionId, req.pilotId, job.nodes), {
      timeoutMs: this.timeout,
    });
    if (r.code === 0) return;
    // Cancelling a job that already ended fails on most batch systems; that is success for the pilot.
    const s = await this.status(req, job);
    if (s.state !== 'finished')
      throw new NoSuccess(
        `cannot cancel job ${job.jobId} on ${conn.where}: ${tailOf(r.stderr || r.stdout)}`,
        {
          obj: req.pilotId,
        },
      );
  }

  async status(req: LaunchRequest, job: LaunchResult): Promise<JobStatus> {
    const conn = await this.connect(req);
    const { statusManyCommand: many, parseStatusMany: parse } = this.jm;
    if (many && parse) {
      // Checks of several pilots of one login that come together (the embedded backend, pilots submitted
      // together, a warm Lambda container) share one query: the first opens a short window, the others join.
      const key = `${conn.where}\0${this.jm.name}`;
      let batch = statusBatches.get(key);
      if (!batch) {
        const ids = new Set<string>();
        const found = new Promise((r) => setTimeout(r, STATUS_WINDOW_MS)).then(async () => {
          statusBatches.delete(key);
          return parse(await conn.exec(many([...ids]), { timeoutMs: this.timeout }));
        });
        batch = { ids, found };
        statusBatches.set(key, batch);
      }
      batch.ids.add(job.jobId);
      const st = (await batch.found.catch(() => undefined))?.get(job.jobId);
      if (st) return st;
    }
    // One job, in the batch system's own words (also for a job the batched query did not list).
    const r = await conn.exec(this.jm.statusCommand(job.jobId, job.sandbox), { timeoutMs: this.timeout });
    return this.jm.parseStatus(r, job.jobId);
  }

  async tail(req: LaunchRequest, job: LaunchResult, lines: number): Promise<string> {
    const conn = await this.connect(req);
    const n = Math.max(1, Math.floor(lines));
    const parts: string[] = [];
    for (const f of ['agent.out', 'agent.err']) {
      const r = await conn.exec(`tail -n ${n} ${shq(`${job.sandbox}/${f}`)} 2>/dev/null`, {
        timeoutMs: this.timeout,
      });
      const text = r.stdout.split('\n').filter(Boolean).join('\n');
      if (text) parts.push(`${f}:\n${text}`);
    }
    return parts.join('\n');
  }

  private get timeout(): number {
    return this.options.commandTimeoutMs ?? 60_000;
  }

  private connect(req: LaunchRequest): Promise<LauncherTransport> {
    if (this.options.transport) return Promise.resolve(this.options.transport);
    const access = this.config.schemas.ssh;
    if (!access) throw new BadParameter(`resource '${req.resource}' has no ssh access schema`);
    const c = req.credentials ?? {};
    const username = c.userId ?? access.user;
    if (!username)
      throw new BadParameter(`resource '${req.resource}' needs a user name: set credentials.userId`, {
        obj: req.pilotId,
      });
    const opts: SshConnectOptions = { host: access.host, username };
    if (access.port !== undefined) opts.port = access.port;
    if (access.hostKey !== undefined) opts.hostKey = access.hostKey;
    if (c.userKey !== undefined) opts.privateKey = c.userKey;
    if (c.userPass !== undefined) opts.password = c.userPass;
    if (this.options.hostKeyStore) opts.hostKeyStore = this.options.hostKeyStore;
    if (this.options.strictHostKeys) opts.trustOnFirstUse = false;
    return getSshConnection(opts, this.options.idleMs ?? 30_000);
  }

  /** Expands `$SCRATCH/x`, `~/x` … with the remote login shell; the result must be absolute. */
  private async expand(conn: LauncherTransport, root: string): Promise<string> {
    const r = await conn.exec(`printf '%s\\n' ${root}`, { timeoutMs: this.timeout });
    const abs = r.stdout.trim().replace(/\/+$/, '');
    if (r.code !== 0 || !abs.startsWith('/') || abs.includes('$') || !SAFE_PATH.test(abs))
      throw new BadParameter(
        `sandbox root '${root}' does not expand to an absolute path on ${conn.where} (got '${abs}')`,
      );
    return abs;
  }

  private spec(req: LaunchRequest, sandbox: string): BatchJobSpec {
    const d = req.description;
    const c = this.config;
    const gpus = d.gpus ?? 0;
    const nodes =
      d.nodes ??
      Math.max(1, Math.ceil(d.cores / c.coresPerNode), c.gpusPerNode ? Math.ceil(gpus / c.gpusPerNode) : 1);
    const spec: BatchJobSpec = {
      jobName: `sortie-${req.pilotId}`,
      sandbox,
      runtimeMinutes: d.runtime,
      cores: d.cores,
      gpus,
      nodes,
      coresPerNode: c.coresPerNode,
      gpusPerNode: c.gpusPerNode,
      queueAs: c.queueAs,
      wholeNodes: c.wholeNodes,
      batchOptions: c.batchOptions,
      preBootstrap: c.preBootstrap,
      node: c.node,
    };
    const queue = d.queue ?? c.defaultQueue;
    if (queue !== undefined) spec.queue = queue;
    if (d.project !== undefined) spec.project = d.project;
    if (d.memory !== undefined) spec.memoryMb = d.memory;
    if (c.parallelEnvironment !== undefined) spec.parallelEnvironment = c.parallelEnvironment;
    return spec;
  }
}

function tailOf(text: string): string {
  return text.trim().split('\n').slice(-5).join(' | ') || '(no output)';
}
