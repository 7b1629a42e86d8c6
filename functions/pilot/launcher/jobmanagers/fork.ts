/**
 * No batch system: the agent is started detached on the login node itself (`setsid nohup`), like RP's
 * `fork://` job manager. The job id is the PID of the agent's shell, which is also its session and process
 * group id, so cancel can signal the whole group. A PID can be reused after the agent ends, so every
 * status and cancel first checks that the PID still runs this sandbox's agent.sh. Walltime is enforced
 * with `timeout` (the agent also stops itself before it).
 */
import type { ExecResult } from '../ssh.ts';
import type { JobStatus } from '../types.ts';
import { AGENT_FILE, type BatchJobSpec, CONFIG_FILE, type JobManager, lastLine, shq } from './types.ts';

/** Seconds past the walltime before `timeout` ends an agent that did not stop itself. */
const GRACE_SECONDS = 60;

function script(s: BatchJobSpec): string {
  return [
    '#!/bin/bash -l',
    '# Started detached by Sortie (fork job manager); $$ is the session leader the launcher signals.',
    `cd ${shq(s.sandbox)} || exit 1`,
    'echo $$ > agent.pid',
    ...(s.preBootstrap.length ? ['# preBootstrap (resource config)', ...s.preBootstrap] : []),
    // --foreground keeps node in this process group, so `kill -- -PGID` reaches it.
    `timeout --foreground --kill-after=30 ${s.runtimeMinutes * 60 + GRACE_SECONDS} ${s.node} ${AGENT_FILE} ${CONFIG_FILE}`,
    'echo $? > agent.exit',
    '',
  ].join('\n');
}

/** Runs `body` with /bin/sh whatever the user's login shell is (csh sites exist). */
const sh = (body: string) => `/bin/sh -c ${shq(body)}`;

/** True (exit 0) while PID runs this sandbox's agent.sh; guards against PID reuse. */
const isOurs = (pid: string, sandbox: string) =>
  `ps -o args= -p ${pid} 2>/dev/null | grep -qF ${shq(`${sandbox}/agent.sh`)}`;

function submitCommand(sandbox: string): string {
  const q = shq(sandbox);
  return sh(
    [
      `cd ${q} || exit 1`,
      'rm -f agent.pid agent.exit',
      // The subshell exits at once, so the agent is reparented to init and survives the SSH session.
      `(setsid nohup /bin/bash ${shq(`${sandbox}/agent.sh`)} > agent.out 2> agent.err < /dev/null &)`,
      'i=0; while [ ! -s agent.pid ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done',
      'cat agent.pid',
    ].join('\n'),
  );
}

function cancelCommand(pid: string, sandbox: string): string {
  return sh(
    [
      `${isOurs(pid, sandbox)} || exit 0`,
      // `kill -SIG -PGID`, not `kill -- -PGID`: dash's kill builtin rejects `--`.
      `kill -TERM -${pid} 2>/dev/null`,
      'i=0; while [ $i -lt 50 ]; do',
      `  ${isOurs(pid, sandbox)} && ps -o stat= -p ${pid} | grep -qv Z || exit 0`,
      '  sleep 0.1; i=$((i+1))',
      'done',
      `kill -KILL -${pid} 2>/dev/null; exit 0`,
    ].join('\n'),
  );
}

function statusCommand(pid: string, sandbox: string): string {
  return sh(
    [
      `if ${isOurs(pid, sandbox)}; then echo "stat=$(ps -o stat= -p ${pid})"; fi`,
      `echo "exit=$(cat ${shq(`${sandbox}/agent.exit`)} 2>/dev/null)"`,
    ].join('\n'),
  );
}

function parseStatus(r: ExecResult, pid: string): JobStatus {
  const stat = /^stat=\s*(\S*)/m.exec(r.stdout)?.[1];
  const exit = /^exit=(\S*)/m.exec(r.stdout)?.[1];
  if (r.code !== 0)
    return { state: 'finished', detail: lastLine(r.stderr) || `status query failed (${r.code})` };
  // Z: exited, waiting for init to reap it.
  if (stat && !stat.startsWith('Z')) return { state: 'running', detail: `pid ${pid} (${stat})` };
  return { state: 'finished', detail: exit ? `pid ${pid} exited ${exit}` : `pid ${pid} not running` };
}

/** The fork adapter (agent detached on the login node). */
export const fork: JobManager = {
  name: 'fork',
  scriptName: 'agent.sh',
  script,
  submitCommand,
  parseSubmit: (stdout) => /^(\d+)$/m.exec(stdout.trim())?.[1],
  // The agent a cut-off start left: agent.pid, if that PID still runs this sandbox's agent.sh.
  findCommand: (sandbox) =>
    `pid=$(cat agent.pid 2>/dev/null) && [ -n "$pid" ] && ${isOurs('"$pid"', sandbox)} && echo "$pid"`,
  cancelCommand,
  statusCommand,
  parseStatus,
};
