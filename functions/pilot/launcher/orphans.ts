/**
 * The orphan sweep on a resource: every process that carries a pilot's RP_SESSION_ID and RP_PILOT_ID in
 * its environment (the agent gives them to every unit) is killed with its process group. Units run in
 * their own sessions so that a cancel can kill a unit's whole tree; when the agent dies without killing
 * them (SIGKILL, OOM, a node-local fault) they are reparented and escape a batch system that tracks
 * processes by parentage (SLURM's proctrack/linuxproc and /pgid, a fork "job"). Run after the job's
 * cancel, on the login node, which is also where fork pilots and single-node test beds run their units,
 * and, over SSH from there, on every other node of the pilot's allocation (a multi-node pilot's units on
 * its other nodes are reparented there just the same).
 */
import { shq } from './jobmanagers/types.ts';

/** Node names as the batch system gives them: nothing a shell would act on. */
const NODE_NAME = /^[A-Za-z0-9][\w.-]*$/;

/** Seconds an SSH login to a node may take before that node is given up (it may be down: node failure). */
const NODE_CONNECT_SECONDS = 5;

/**
 * A POSIX sh command that kills the pilot's unit processes readable by the login user and prints
 * `killed N`. Only exact `NAME=value` lines of /proc/PID/environ match, so pilot.0001 never matches
 * pilot.00010.
 */
export function orphanSweepCommand(sessionId: string, pilotId: string): string {
  const s = shq(`RP_SESSION_ID=${sessionId}`);
  const p = shq(`RP_PILOT_ID=${pilotId}`);
  return [
    'n=0',
    'for d in /proc/[0-9]*; do',
    '  e=$(tr "\\000" "\\n" 2>/dev/null < "$d/environ") || continue',
    `  printf "%s\\n" "$e" | grep -qxF ${s} || continue`,
    `  printf "%s\\n" "$e" | grep -qxF ${p} || continue`,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion, not a JS one
    '  pid=${d#/proc/}',
    '  kill -9 -- "-$pid" 2>/dev/null; kill -9 "$pid" 2>/dev/null && n=$((n+1))',
    'done',
    'echo "killed $n"',
  ].join('\n');
}

/**
 * The sweep here (the login node) and, in parallel over SSH (BatchMode: the login user's own keys, as the
 * agent's SSH launch method uses them), on each of `nodes` other than this host. Prints one
 * `<node>: killed N` line per node reached; a node that cannot be reached is skipped (a lost node took
 * its processes with it). Names that are not plain host names are left out.
 */
export function orphanSweepEverywhere(
  sessionId: string,
  pilotId: string,
  nodes: readonly string[] = [],
): string {
  const sweep = orphanSweepCommand(sessionId, pilotId);
  const others = [...new Set(nodes)].filter((n) => NODE_NAME.test(n));
  if (others.length === 0) return sweep;
  const remote = shq(sweep);
  return [
    `printf '%s: ' "$(hostname)"`,
    sweep,
    'me=$(hostname); me_s=$(hostname -s)',
    `for node in ${others.map(shq).join(' ')}; do`,
    '  case "$node" in "$me"|"$me_s") continue;; esac',
    `  ( r=$(ssh -n -o BatchMode=yes -o ConnectTimeout=${NODE_CONNECT_SECONDS} "$node" ${remote} 2>/dev/null) && echo "$node: $r" ) &`,
    'done',
    'wait',
  ].join('\n');
}
