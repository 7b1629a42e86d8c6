/**
 * What every batch-system adapter provides: the job script, and the shell commands (run on the login node
 * over SSH) to submit, cancel and query it, with parsers for their output. Pure functions of their inputs,
 * so golden files pin the scripts and recorded outputs pin the parsers.
 */
import type { JobManagerName } from '../../../../core/resources.ts';
import type { ExecResult } from '../ssh.ts';
import type { JobStatus } from '../types.ts';

/** Everything a job script needs, resolved from the pilot description and the resource config. */
export interface BatchJobSpec {
  /** `sortie-<pilot id>`. */
  jobName: string;
  /** Absolute sandbox path on the resource (already expanded: batch directives do not expand variables). */
  sandbox: string;
  runtimeMinutes: number;
  cores: number;
  gpus: number;
  nodes: number;
  coresPerNode: number;
  gpusPerNode: number;
  /** Total MB for the job, if the pilot asked. */
  memoryMb?: number;
  queue?: string;
  project?: string;
  queueAs: 'partition' | 'qos';
  wholeNodes: boolean;
  parallelEnvironment?: string;
  batchOptions: readonly string[];
  preBootstrap: readonly string[];
  /** How to run node (may hold shell variables such as `$WORK`). */
  node: string;
}

/** One batch system. */
export interface JobManager {
  readonly name: JobManagerName;
  /** File name of the job script in the sandbox. */
  readonly scriptName: string;
  /** The job script. */
  script(spec: BatchJobSpec): string;
  /** Shell command, run in any directory, that submits `<sandbox>/<scriptName>` and prints the job id. */
  submitCommand(sandbox: string): string;
  /** The job id in the submit command's stdout, or undefined if there is none. */
  parseSubmit(stdout: string): string | undefined;
  /**
   * Shell command (run in the sandbox) printing the id of this sandbox's job if the batch system knows it,
   * else nothing: how a retried submit cut off midway finds the job it may have made (submit-once.ts).
   */
  findCommand?(sandbox: string, jobName: string): string;
  /** `sandbox` is the job's sandbox (the fork adapter needs it to check that a PID is still its agent). */
  cancelCommand(jobId: string, sandbox: string): string;
  statusCommand(jobId: string, sandbox: string): string;
  /** Maps the status command's result; an unknown job id is `finished` with the batch system's words. */
  parseStatus(result: ExecResult, jobId: string): JobStatus;
  /**
   * Optional: one command that reports several jobs at once (one squeue for the checks of several pilots
   * of a login), and its parser, which returns only the jobs it found (the others are asked one by one).
   */
  statusManyCommand?(jobIds: readonly string[]): string;
  parseStatusMany?(result: ExecResult): Map<string, JobStatus>;
}

/** The agent bundle's name in the sandbox: .cjs so that no package.json above can make Node read it as ESM. */
export const AGENT_FILE = 'agent.cjs';
/** The agent configuration's name in the sandbox (mode 0600: it holds the pilot secret). */
export const CONFIG_FILE = 'agent.json';

/** Single-quotes a string for POSIX sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `HH:MM:SS` from minutes (hours may exceed 24, which SLURM, PBS and SGE accept). */
export function hms(minutes: number): string {
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:00`;
}

/** Cores per node the job asks for: all of them for whole-node sites, else an even share of the pilot's. */
export function coresPerChunk(s: BatchJobSpec): number {
  return s.wholeNodes ? s.coresPerNode : Math.ceil(s.cores / s.nodes);
}

/** The shell body shared by every batch script: enter the sandbox, run preBootstrap, become the agent. */
export function agentBody(s: BatchJobSpec): string {
  return [
    `cd ${shq(s.sandbox)} || exit 1`,
    ...(s.preBootstrap.length ? ['# preBootstrap (resource config)', ...s.preBootstrap] : []),
    `exec ${s.node} ${AGENT_FILE} ${CONFIG_FILE}`,
    '',
  ].join('\n');
}

/** Last non-empty line of a text, trimmed (batch tools put the useful part last). */
export function lastLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .pop() ?? ''
  );
}
