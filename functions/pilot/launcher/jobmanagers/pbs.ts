/**
 * PBS in two flavours: PBS Pro / OpenPBS (`-l select=` chunks, finished jobs via `qstat -x`) and Torque
 * (`-l nodes=:ppn=`, finished jobs kept as state C for `keep_completed`). Both submit with `qsub` and
 * cancel with `qdel`.
 */
import type { ExecResult } from '../ssh.ts';
import type { JobStatus } from '../types.ts';
import { agentBody, type BatchJobSpec, coresPerChunk, hms, type JobManager, lastLine, shq } from './types.ts';

const QUEUED = new Set(['Q', 'H', 'W', 'T', 'M', 'U']);
const FINISHED = new Set(['F', 'C', 'X']);
const NAMES: Readonly<Record<string, string>> = {
  Q: 'queued',
  H: 'held',
  W: 'waiting',
  T: 'in transit',
  M: 'moved',
  U: 'suspended (workstation busy)',
  R: 'running',
  E: 'exiting',
  B: 'array begun',
  S: 'suspended',
  F: 'finished',
  C: 'completed',
  X: 'subjob finished',
};

function header(s: BatchJobSpec, resources: string[]): string[] {
  const d = (opt: string) => `#PBS ${opt}`;
  const lines = [
    '#!/bin/bash -l',
    d(`-N ${s.jobName}`),
    d(`-o ${s.sandbox}/agent.out`),
    d(`-e ${s.sandbox}/agent.err`),
    d(`-l walltime=${hms(s.runtimeMinutes)}`),
    ...resources.map(d),
  ];
  if (s.queue) lines.push(d(`-q ${s.queue}`));
  if (s.project) lines.push(d(`-A ${s.project}`));
  // Not rerunnable: a rerun would start a second agent with the same pilot identity.
  lines.push(d('-r n'));
  for (const o of s.batchOptions) lines.push(d(o));
  return lines;
}

function pbsproScript(s: BatchJobSpec): string {
  const cpus = coresPerChunk(s);
  let chunk = `select=${s.nodes}:ncpus=${cpus}:mpiprocs=${cpus}`;
  if (s.gpus > 0) chunk += `:ngpus=${Math.ceil(s.gpus / s.nodes)}`;
  if (s.memoryMb) chunk += `:mem=${Math.ceil(s.memoryMb / s.nodes)}mb`;
  const res = [`-l ${chunk}`];
  if (s.wholeNodes) res.push('-l place=scatter:excl');
  return `${header(s, res).join('\n')}\n\n${agentBody(s)}`;
}

function torqueScript(s: BatchJobSpec): string {
  let nodes = `nodes=${s.nodes}:ppn=${coresPerChunk(s)}`;
  if (s.gpus > 0) nodes += `:gpus=${Math.ceil(s.gpus / s.nodes)}`;
  const res = [`-l ${nodes}`];
  if (s.memoryMb) res.push(`-l mem=${s.memoryMb}mb`);
  return `${header(s, res).join('\n')}\n\n${agentBody(s)}`;
}

/** Reads `qstat -f` output (PBS Pro and Torque print the same `key = value` lines). */
function parseStatus(r: ExecResult, jobId: string): JobStatus {
  const text = r.stdout;
  const state = /^\s*job_state\s*=\s*(\S)/im.exec(text)?.[1];
  if (r.code !== 0 || !state) {
    return { state: 'finished', detail: lastLine(r.stderr) || `job ${jobId} not known to qstat` };
  }
  const exit = /^\s*exit_status\s*=\s*(-?\d+)/im.exec(text)?.[1];
  const comment = /^\s*comment\s*=\s*(.+)$/im.exec(text)?.[1]?.trim();
  const parts = [`${state} (${NAMES[state] ?? 'unknown'})`];
  if (exit !== undefined) parts.push(`exit ${exit}`);
  if (comment) parts.push(comment);
  const detail = parts.join('; ');
  if (QUEUED.has(state)) return { state: 'queued', detail };
  if (FINISHED.has(state)) return { state: 'finished', detail };
  return { state: 'running', detail };
}

// qsub prints `<seq>.<server>` (PBS Pro: `1234.desched1`, Torque: `1234.head.example.org`).
const parseSubmit = (stdout: string) => /^(\d+(?:\[\d*\])?(?:\.[\w.-]+)?)$/m.exec(stdout.trim())?.[1];

/** PBS Pro / OpenPBS. */
export const pbspro: JobManager = {
  name: 'pbspro',
  scriptName: 'agent.pbs',
  script: pbsproScript,
  submitCommand: (sandbox) => `qsub ${shq(`${sandbox}/agent.pbs`)}`,
  parseSubmit,
  cancelCommand: (id) => `qdel ${shq(id)}`,
  // -x includes finished jobs still in the server's history.
  statusCommand: (id) => `qstat -x -f ${shq(id)}`,
  parseStatus,
};

/** Torque. */
export const torque: JobManager = {
  name: 'torque',
  scriptName: 'agent.pbs',
  script: torqueScript,
  submitCommand: (sandbox) => `qsub ${shq(`${sandbox}/agent.pbs`)}`,
  parseSubmit,
  cancelCommand: (id) => `qdel ${shq(id)}`,
  statusCommand: (id) => `qstat -f ${shq(id)}`,
  parseStatus,
};
