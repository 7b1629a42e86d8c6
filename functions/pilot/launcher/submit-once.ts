/**
 * A batch submission that is safe to retry. A Launch retried after a dropped SSH connection must not submit
 * a second job when the first `sbatch` (or `qsub`, `bsub`, fork start) ran but its job id never came back.
 * The submit runs on the login node with its output and exit code written to files in the pilot sandbox,
 * which the remote shell writes even when the connection is gone; a retry reads them first:
 *
 * ```
 *   submit.code is 0           → the first submit ended: answer its job id again, submit nothing
 *   submit.out without a code  → it began and was cut off: the job may exist; look it up (the job
 *                                manager's findCommand: SLURM by job name and sandbox, fork by agent.pid)
 *                                and answer that job; only when none is found, submit
 *   anything else              → submit (a first attempt that failed created no job)
 * ```
 * Batch systems without a lookup (PBS, LSF, SGE) still cover the common case (the submit ended, its answer
 * was lost); a submit cut off midway there is submitted again.
 */
import { type JobManager, shq } from './jobmanagers/types.ts';

/** Files the submission leaves in the sandbox. */
export const SUBMIT_FILES = { out: 'submit.out', err: 'submit.err', code: 'submit.code' } as const;

/** The remote command (POSIX sh, whatever the login shell) that submits the sandbox's job at most once. */
export function submitOnceCommand(jm: JobManager, sandbox: string, jobName: string): string {
  const { out, err, code } = SUBMIT_FILES;
  const find = jm.findCommand?.(sandbox, jobName);
  const lines = [
    `cd ${shq(sandbox)} || exit 1`,
    `if [ -f ${code} ] && [ "$(cat ${code})" = 0 ]; then cat ${out}; exit 0; fi`,
    ...(find
      ? [
          `if [ -f ${out} ] && [ ! -f ${code} ]; then`,
          `  id=$(${find})`,
          `  if [ -n "$id" ]; then echo "$id" > ${out}; echo 0 > ${code}; echo "$id"; exit 0; fi`,
          'fi',
        ]
      : []),
    `rm -f ${code}; : > ${out}`,
    `${jm.submitCommand(sandbox)} > ${out} 2> ${err}; c=$?`,
    `echo $c > ${code}`,
    `cat ${out}; cat ${err} >&2; exit $c`,
  ];
  return `/bin/sh -c ${shq(lines.join('\n'))}`;
}
