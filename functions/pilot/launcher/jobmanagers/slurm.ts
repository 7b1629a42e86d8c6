/** SLURM: `sbatch --parsable`, `scancel`, `squeue` (unknown or purged ids count as finished). */
import type { ExecResult } from '../ssh.ts';
import type { JobStatus } from '../types.ts';
import { agentBody, type BatchJobSpec, coresPerChunk, hms, type JobManager, lastLine, shq } from './types.ts';

const QUEUED = new Set([
  'PENDING',
  'CONFIGURING',
  'REQUEUED',
  'REQUEUE_HOLD',
  'REQUEUE_FED',
  'RESV_DEL_HOLD',
]);
const FINISHED = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'NODE_FAIL',
  'PREEMPTED',
  'BOOT_FAIL',
  'DEADLINE',
  'OUT_OF_MEMORY',
  'SPECIAL_EXIT',
  'REVOKED',
]);

function script(s: BatchJobSpec): string {
  const d = (opt: string) => `#SBATCH ${opt}`;
  const lines = [
    '#!/bin/bash -l',
    d(`--job-name=${s.jobName}`),
    d(`--output=${s.sandbox}/agent.out`),
    d(`--error=${s.sandbox}/agent.err`),
    d(`--chdir=${s.sandbox}`),
    d(`--time=${hms(s.runtimeMinutes)}`),
    d(`--nodes=${s.nodes}`),
    d(`--ntasks=${s.wholeNodes ? s.nodes * coresPerChunk(s) : s.cores}`),
    d('--cpus-per-task=1'),
  ];
  if (s.wholeNodes) lines.push(d('--exclusive'));
  if (s.gpus > 0) lines.push(d(`--gpus=${s.gpus}`));
  if (s.memoryMb) lines.push(d(`--mem=${Math.ceil(s.memoryMb / s.nodes)}M`));
  if (s.queue) lines.push(d(s.queueAs === 'qos' ? `--qos=${s.queue}` : `--partition=${s.queue}`));
  if (s.project) lines.push(d(`--account=${s.project}`));
  // A requeued pilot would start a second agent with the same identity; let the pilot layer decide instead.
  lines.push(d('--no-requeue'));
  for (const o of s.batchOptions) lines.push(d(o));
  return `${lines.join('\n')}\n\n${agentBody(s)}`;
}

function parseStatus(r: ExecResult, jobId: string): JobStatus {
  const out = r.stdout.trim();
  if (r.code !== 0 || out === '') {
    const words = lastLine(r.stderr) || `job ${jobId} not in squeue`;
    return { state: 'finished', detail: words };
  }
  const [state = '', reason = ''] = (out.split('\n')[0] ?? '').split('|').map((x) => x.trim());
  return statusOf(state, reason);
}

/** `squeue -o '%i|%T|%r'` lines → the jobs found (an id squeue no longer knows is simply absent). */
function parseStatusMany(r: ExecResult): Map<string, JobStatus> {
  const found = new Map<string, JobStatus>();
  for (const line of r.stdout.split('\n')) {
    const [id = '', state = '', reason = ''] = line.split('|').map((x) => x.trim());
    if (/^\d+$/.test(id) && state) found.set(id, statusOf(state, reason));
  }
  return found;
}

function statusOf(state: string, reason: string): JobStatus {
  const base = state.split(/\s+/)[0] ?? '';
  // A finished job keeps its last pending reason (e.g. CANCELLED with BeginTime), which would mislead.
  if (FINISHED.has(base)) return { state: 'finished', detail: state };
  const detail = reason && reason !== 'None' ? `${state} (${reason})` : state;
  if (QUEUED.has(base)) return { state: 'queued', detail };
  return { state: 'running', detail };
}

/** The SLURM adapter. */
export const slurm: JobManager = {
  name: 'slurm',
  scriptName: 'agent.sbatch',
  script,
  submitCommand: (sandbox) => `sbatch --parsable ${shq(`${sandbox}/agent.sbatch`)}`,
  // `--parsable` prints `<id>` or `<id>;<cluster>`; anything else (warnings) goes to stderr.
  parseSubmit: (stdout) => /^(\d+)(?:;\S+)?$/m.exec(stdout.trim())?.[1],
  // The user's jobs of this name (any state the controller still holds) whose working directory is this
  // sandbox (--chdir): pilot ids repeat across sessions, sandboxes do not.
  findCommand: (sandbox, jobName) =>
    `squeue -h -t all -u "$(id -un)" -n ${shq(jobName)} -o '%i %Z' | awk -v d=${shq(sandbox)} '$2 == d { print $1; exit }'`,
  cancelCommand: (id) => `scancel ${shq(id)}`,
  // -t all: with an explicit id squeue reports any state the controller still holds (MinJobAge).
  statusCommand: (id) => `squeue -h -t all -j ${shq(id)} -o '%T|%r'`,
  parseStatus,
  // Several ids at once; an id SLURM has purged makes squeue fail as a whole, so `|| true` keeps the rest
  // (the parser takes what it finds; the missing ones are asked one by one).
  statusManyCommand: (ids) => `squeue -h -t all -j ${shq(ids.join(','))} -o '%i|%T|%r' 2>/dev/null || true`,
  parseStatusMany,
};
