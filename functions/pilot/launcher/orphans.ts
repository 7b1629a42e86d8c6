/**
 * The orphan sweep on a resource: every process that carries a pilot's RP_SESSION_ID and RP_PILOT_ID in
 * its environment (the agent gives them to every unit) is killed with its process group. Units run in
 * their own sessions so that a cancel can kill a unit's whole tree; when the agent dies without killing
 * them (SIGKILL, OOM, a node-local fault) they are reparented and escape a batch system that tracks
 * processes by parentage (SLURM's proctrack/linuxproc and /pgid, a fork "job"). Run after the job's
 * cancel, on the login node, which is also where fork pilots and single-node test beds run their units.
 * (Multi-node jobs rely on the batch system's cgroups for the other nodes.)
 */
import { shq } from './jobmanagers/types.ts';

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
    '  e=$(tr "\\000" "\\n" < "$d/environ" 2>/dev/null) || continue',
    `  printf "%s\\n" "$e" | grep -qxF ${s} || continue`,
    `  printf "%s\\n" "$e" | grep -qxF ${p} || continue`,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion, not a JS one
    '  pid=${d#/proc/}',
    '  kill -9 -- "-$pid" 2>/dev/null; kill -9 "$pid" 2>/dev/null && n=$((n+1))',
    'done',
    'echo "killed $n"',
  ].join('\n');
}
