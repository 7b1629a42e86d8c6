/**
 * IBM Spectrum LSF: `bsub < script` (directives are read from stdin), `bkill`, `bjobs -o`. Whole-node
 * CSM systems (Summit, Lassen) take `-nnodes`; plain LSF takes `-n` cores spread `ptile` per host.
 */
import type { ExecResult } from '../ssh.ts';
import type { JobStatus } from '../types.ts';
import { agentBody, type BatchJobSpec, coresPerChunk, type JobManager, lastLine, shq } from './types.ts';

const QUEUED = new Set(['PEND', 'PSUSP', 'WAIT']);
const FINISHED = new Set(['DONE', 'EXIT']);

/** LSF's -W takes `[hours:]minutes`. */
function walltime(minutes: number): string {
  return `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, '0')}`;
}

function script(s: BatchJobSpec): string {
  const d = (opt: string) => `#BSUB ${opt}`;
  const lines = [
    '#!/bin/bash -l',
    d(`-J ${s.jobName}`),
    d(`-o ${s.sandbox}/agent.out`),
    d(`-e ${s.sandbox}/agent.err`),
    d(`-cwd ${s.sandbox}`),
    d(`-W ${walltime(s.runtimeMinutes)}`),
  ];
  if (s.wholeNodes) lines.push(d(`-nnodes ${s.nodes}`));
  else {
    lines.push(d(`-n ${s.cores}`), d(`-R "span[ptile=${coresPerChunk(s)}]"`));
    if (s.gpus > 0) lines.push(d(`-gpu "num=${Math.ceil(s.gpus / s.nodes)}"`));
  }
  // LSF's rusage[mem] is per host, in the cluster's LSF_UNIT_FOR_LIMITS (MB by default).
  if (s.memoryMb) lines.push(d(`-R "rusage[mem=${Math.ceil(s.memoryMb / s.nodes)}]"`));
  if (s.queue) lines.push(d(`-q ${s.queue}`));
  if (s.project) lines.push(d(`-P ${s.project}`));
  for (const o of s.batchOptions) lines.push(d(o));
  return `${lines.join('\n')}\n\n${agentBody(s)}`;
}

function parseStatus(r: ExecResult, jobId: string): JobStatus {
  const line = r.stdout.split('\n').find((l) => l.includes('|'));
  // `bjobs` says `Job <123> is not found` (rc 255) once the job has left mbatchd's memory.
  if (r.code !== 0 || !line) {
    return {
      state: 'finished',
      detail: lastLine(r.stderr) || lastLine(r.stdout) || `job ${jobId} not found`,
    };
  }
  const [stat = '', exit = '', reason = ''] = line.split('|').map((x) => x.trim());
  const parts = [stat];
  if (exit && exit !== '-') parts.push(`exit ${exit}`);
  if (reason && reason !== '-') parts.push(reason);
  const detail = parts.join('; ');
  if (QUEUED.has(stat)) return { state: 'queued', detail };
  if (FINISHED.has(stat)) return { state: 'finished', detail };
  return { state: 'running', detail };
}

/** The LSF adapter. */
export const lsf: JobManager = {
  name: 'lsf',
  scriptName: 'agent.lsf',
  script,
  submitCommand: (sandbox) => `bsub < ${shq(`${sandbox}/agent.lsf`)}`,
  // `Job <12345> is submitted to queue <pbatch>.`
  parseSubmit: (stdout) => /Job <(\d+)> is submitted/.exec(stdout)?.[1],
  cancelCommand: (id) => `bkill ${shq(id)}`,
  statusCommand: (id) => `bjobs -noheader -o 'stat exit_code pend_reason delimiter="|"' ${shq(id)}`,
  parseStatus,
};
