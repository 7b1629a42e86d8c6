/**
 * (Son of / Univa / Open) Grid Engine: `qsub -terse`, `qdel`, and the job's row in `qstat -u $USER`
 * (finished jobs disappear from qstat; `qacct` needs accounting, which many sites restrict). A job in error
 * state (`Eqw`: it can never start) also gets `qstat -j`'s "error reason", so the pilot's log says why.
 */
import type { ExecResult } from '../ssh.ts';
import type { JobStatus } from '../types.ts';
import { agentBody, type BatchJobSpec, hms, type JobManager, shq } from './types.ts';

function script(s: BatchJobSpec): string {
  const d = (opt: string) => `#$ ${opt}`;
  const lines = [
    '#!/bin/bash -l',
    d(`-N ${s.jobName}`),
    d('-S /bin/bash'),
    d(`-o ${s.sandbox}/agent.out`),
    d(`-e ${s.sandbox}/agent.err`),
    d(`-wd ${s.sandbox}`),
    d(`-l h_rt=${hms(s.runtimeMinutes)}`),
    // Not rerunnable: a rerun would start a second agent with the same pilot identity.
    d('-r n'),
  ];
  const slots = s.wholeNodes ? s.nodes * s.coresPerNode : s.cores;
  if (slots > 1) lines.push(d(`-pe ${s.parallelEnvironment ?? 'smp'} ${slots}`));
  if (s.gpus > 0) lines.push(d(`-l gpus=${Math.ceil(s.gpus / s.nodes)}`));
  // h_vmem is per slot.
  if (s.memoryMb) lines.push(d(`-l h_vmem=${Math.ceil(s.memoryMb / slots)}M`));
  if (s.queue) lines.push(d(`-q ${s.queue}`));
  if (s.project) lines.push(d(`-P ${s.project}`));
  for (const o of s.batchOptions) lines.push(d(o));
  return `${lines.join('\n')}\n\n${agentBody(s)}`;
}

/** Runs `body` with /bin/sh whatever the user's login shell is (csh sites exist). */
const sh = (body: string) => `/bin/sh -c ${shq(body)}`;

function statusCommand(jobId: string): string {
  const id = shq(jobId);
  // One line and no '!': csh, a login shell some sites still give, rejects a quoted string that spans lines
  // and expands '!' (history) even inside single quotes.
  return sh(
    [
      'out=$(qstat -u "$USER") || exit $?',
      'printf "%s\\n" "$out"',
      // Only for a job in error state: qstat -j is a second call, and its reason is all that is needed.
      `if printf "%s\\n" "$out" | awk -v id=${id} '$1 == id && $5 ~ /E/ { f = 1 } END { exit (f ? 0 : 1) }'; then qstat -j ${id} | grep '^error reason'; fi`,
      'exit 0',
    ].join('; '),
  );
}

function parseStatus(r: ExecResult, jobId: string): JobStatus {
  const row = r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((cols) => cols[0] === jobId);
  if (r.code !== 0 && !row) {
    return { state: 'finished', detail: r.stderr.trim() || `qstat failed (exit ${r.code})` };
  }
  if (!row) return { state: 'finished', detail: `job ${jobId} no longer in qstat` };
  const st = row[4] ?? '';
  // Columns: id prior name user state date time [queue] slots; the queue only once the job runs.
  let detail = `${st} (queue ${row[7]?.includes('@') ? row[7] : '-'})`;
  // `error reason    1:      11/25/2025 14:00:02 [1001:2653]: error: can't open output file "…"`
  const reason = /^error reason\s+\d+:\s*(?:\S+ \S+ \[[^\]]*\]:\s*)?(.+)$/m.exec(r.stdout)?.[1]?.trim();
  if (reason) detail += `; ${reason}`;
  // E = error (e.g. Eqw: the job can never start); d = being deleted. Neither will run the agent.
  if (st.includes('E') || st.includes('d')) return { state: 'finished', detail };
  // R alone is a restarted job (Rq waits again, Rr runs); s, S, T are suspended jobs, which still hold their slots.
  if (/[rtsST]/.test(st)) return { state: 'running', detail };
  return { state: 'queued', detail };
}

/** The Grid Engine adapter. */
export const sge: JobManager = {
  name: 'sge',
  scriptName: 'agent.sge',
  script,
  submitCommand: (sandbox) => `qsub -terse ${shq(`${sandbox}/agent.sge`)}`,
  // -terse prints just the id (`4711`, or `4711.1-10:1` for arrays).
  parseSubmit: (stdout) => /^(\d+)/m.exec(stdout.trim())?.[1],
  cancelCommand: (id) => `qdel ${shq(id)}`,
  statusCommand,
  parseStatus,
};
