#!/usr/bin/env bash
# Grid Engine on this machine (`scripts/testbed.sh sge up|down|status` runs this file): Debian 12's Son of Grid
# Engine 8.1.9 with one qmaster and one execd on this host, an exec host of the host's name, queue all.q with a
# few slots, a parallel environment `smp` ($pe_slots: every slot on one host) and the scheduler tuned to run
# every second. hpcuser reaches it over the single-node bed's sshd (127.0.0.1:2222), which `up` brings up too if
# it is down (and `down` leaves alone). Recipe and gotchas: /work/shared/reference/hpc-testbed.md §3.
#
#   scripts/testbed.sh sge up       # idempotent; prints `export` lines, also written to $SORTIE_SGE_DIR/env
#   scripts/testbed.sh sge status   # rc 0 when both daemons are alive, the queue takes jobs and hpcuser's qstat answers
#   scripts/testbed.sh sge down     # delete every job, stop execd and qmaster; leaves the packages and the cell
#
# The cell is Debian's own (SGE_ROOT=/var/lib/gridengine, cell `default`, spool /var/spool/gridengine), which the
# package's postinst creates and every client finds without any environment: hpcuser's plain `qsub` works.
# gridengine-client CONFLICTS with slurm-wlm-torque (both ship /usr/bin/qsub, qstat, qdel): apt would silently
# remove the SLURM PBS wrappers. Nothing in Sortie uses them (the PBS adapters are tested against golden files),
# so they are not installed; if they are, `up` refuses rather than remove them.
set -euo pipefail

SD="${SORTIE_SGE_DIR:-/var/tmp/sortie-sge}"
SLOTS="${SORTIE_SGE_SLOTS:-4}"
TB_USER=hpcuser
PKGS=(gridengine-master gridengine-exec gridengine-client)
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
# The commands on PATH are Debian's wrapper, which works out SGE_ARCH (about a second, many processes) on every
# call; this script calls the binaries behind it instead.
BIN=/usr/lib/gridengine
COMMON="$SGE_ROOT/$SGE_CELL/common"
SPOOL=/var/spool/gridengine
NODE="$(hostname)"
QMASTER_PID="$SPOOL/qmaster/qmaster.pid"
# execd names its spool directory after what this host's address resolves to (`localhost` where /etc/hosts lists
# that first), which need not be the host name; there is one execd here, so any live pid file under execd/ is it.
execd_pidfile() {
  local f
  for f in "$SPOOL"/execd/*/execd.pid; do
    if alive "$f"; then
      echo "$f"
      return 0
    fi
  done
  echo "$SPOOL/execd/$NODE/execd.pid"
}
HERE="$(cd "$(dirname "$0")" && pwd)"

die() { echo "sge: $*" >&2; exit 1; }
log() { echo "sge: $*" >&2; }

[[ "$(id -u)" == 0 ]] || die "must run as root (installs packages, starts daemons)"
[[ "$SD" == /* ]] || die "SORTIE_SGE_DIR must be absolute, got '$SD'"
[[ "$SLOTS" =~ ^[1-9][0-9]?$ ]] || die "SORTIE_SGE_SLOTS must be 1-99, got '$SLOTS'"

# Same liveness test as testbed.sh: /proc/PID/stat exists and is not a zombie (PID 1 reaps slowly here).
alive_pid() {
  local pid="$1" stat
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z ]]
}
pid_of() { [[ -s "$1" ]] && tr -dc 0-9 <"$1" || true; }
alive() { alive_pid "$(pid_of "$1")"; }

# The single-node bed's facts (its sshd, key, known_hosts), read from the env file its `up` wrote.
tb_env() {
  local f="${SORTIE_TESTBED_DIR:-/var/tmp/sortie-testbed}/env"
  [[ -s "$f" ]] || return 1
  # shellcheck disable=SC1090
  source "$f"
}

ssh_as_user() {
  tb_env || return 1
  timeout 15 ssh -i "$SORTIE_TESTBED_KEY" -p "$SORTIE_TESTBED_PORT" -o BatchMode=yes -o ConnectTimeout=5 \
    -o UserKnownHostsFile="$SORTIE_TESTBED_DIR/ssh/known_hosts" -o StrictHostKeyChecking=yes -o LogLevel=ERROR \
    "$TB_USER@$SORTIE_TESTBED_HOST" "$@"
}

install_packages() {
  local missing=() p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  if dpkg-query -W -f='${Status}' slurm-wlm-torque 2>/dev/null | grep -q 'install ok installed'; then
    die "slurm-wlm-torque is installed and gridengine-client conflicts with it over /usr/bin/qsub (apt would remove it); remove it first (apt-get remove slurm-wlm-torque) — Sortie does not use it"
  fi
  log "installing ${missing[*]}"
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then apt-get update -q >&2; fi
  # The packages' init scripts would start sge_qmaster, sge_execd and exim4 (pulled in as the mailer) on a
  # machine without a policy-rc.d (images have one); this script starts what it needs itself, and no mailer.
  local policy=''
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# testbed-sge.sh: no daemon starts while it installs packages\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=120 "${missing[@]}" >&2 || rc=$?
  [[ -z "$policy" ]] || rm -f "$policy"
  ((rc == 0)) || die "apt-get install ${missing[*]} failed ($rc)"
  [[ -s "$COMMON/bootstrap" ]] || die "the gridengine packages did not create the cell ($COMMON/bootstrap missing)"
}

# Grid Engine refuses a client whose address resolves to another name than the one it calls itself ("client IP
# resolved to host name localhost. This is not identical to clients host name vm"): host_aliases makes this
# host's name, localhost and every other name of a loopback address in /etc/hosts one host. Traffic stays on
# loopback: a host name that resolves elsewhere is refused rather than used.
fix_host_names() {
  local addr names
  addr="$(getent ahostsv4 "$NODE" | awk 'NR == 1 { print $1 }')"
  [[ "$addr" == 127.* ]] ||
    die "this host's name '$NODE' resolves to '${addr:-nothing}', not a loopback address; add '127.0.1.1 $NODE' to /etc/hosts"
  # One line: the unique name first, then its aliases, each name once (Grid Engine rejects a name listed twice).
  names="$(awk -v node="$NODE" '$1 ~ /^127\./ {
      for (i = 2; i <= NF && $i !~ /^#/; i++) if ($i != node && $i != "localhost" && !seen[$i]++) printf " %s", $i
    }' /etc/hosts)"
  echo "$NODE localhost$names" >"$COMMON/host_aliases.tmp"
  mv "$COMMON/host_aliases.tmp" "$COMMON/host_aliases"
  echo "$NODE" >"$COMMON/act_qmaster"
}

# Polls (0.1 s, bounded) until a command succeeds.
await() {
  local what="$1" tries="$2" i
  shift 2
  for ((i = 0; i < tries; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$what not ready after $((tries / 10)) s; see $SPOOL/qmaster/messages and $SPOOL/execd/*/messages"
}

start_qmaster() {
  install -d -m 0755 -o sgeadmin -g sgeadmin /var/run/gridengine
  alive "$QMASTER_PID" || /usr/sbin/sge_qmaster 9>&-
  await qmaster 300 "$BIN/qconf" -sh
}

# Adds a configuration object from a file, or replaces it when it exists (up is idempotent).
put() {
  local kind="$1" name="$2" file="$3"
  local op=-A out
  if "$BIN/qconf" "-s$kind" "$name" >/dev/null 2>&1; then op=-M; fi
  # qconf says what it did on stderr; keep it only when it fails.
  out="$("$BIN/qconf" "$op$kind" "$file" 2>&1)" || die "qconf $op$kind $file: $out"
}

configure() {
  local out
  install -d -m 0755 "$SD"
  "$BIN/qconf" -sh 2>/dev/null | grep -qx "$NODE" || "$BIN/qconf" -ah "$NODE" >/dev/null 2>&1
  "$BIN/qconf" -ss 2>/dev/null | grep -qx "$NODE" || "$BIN/qconf" -as "$NODE" >/dev/null 2>&1
  cat >"$SD/exechost.conf" <<EOF
hostname              $NODE
load_scaling          NONE
complex_values        NONE
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE
EOF
  put e "$NODE" "$SD/exechost.conf"
  # $pe_slots: all of a job's slots on one host, which is what a single exec host gives anyway.
  cat >"$SD/pe-smp.conf" <<EOF
pe_name            smp
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    \$pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
  put p smp "$SD/pe-smp.conf"
  # No load thresholds: the shared 2-core machine's load would otherwise put the queue in alarm and hold jobs.
  # rerun FALSE: a rerun would start a second agent with the same pilot identity.
  cat >"$SD/queue-all.q.conf" <<EOF
qname                 all.q
hostlist              $NODE
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               smp
rerun                 FALSE
slots                 $SLOTS
tmpdir                /tmp
shell                 /bin/bash
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
EOF
  put q all.q "$SD/queue-all.q.conf"
  # Scheduling every second (default 15 s; submit → start 6.4 s before, 0.1 s after), also right after a
  # submit or a job's end; no load adjustment, so a just-started job does not make the host look busy.
  "$BIN/qconf" -ssconf | sed -E \
    -e 's/^(schedule_interval[[:space:]]+).*/\10:0:1/' \
    -e 's/^(flush_submit_sec[[:space:]]+).*/\11/' \
    -e 's/^(flush_finish_sec[[:space:]]+).*/\11/' \
    -e 's/^(job_load_adjustments[[:space:]]+).*/\1NONE/' >"$SD/sched.conf"
  out="$("$BIN/qconf" -Msconf "$SD/sched.conf" 2>&1)" || die "qconf -Msconf: $out"
}

# The queue instance takes jobs once execd has reported in: its state column (after the load) is then empty.
queue_ready() {
  local line
  line="$("$BIN/qstat" -f -q all.q 2>/dev/null | awk -v q="all.q@$NODE" '$1 == q')"
  [[ -n "$line" && "$(awk '{ print $6 }' <<<"$line")" == "" ]]
}

start_execd() {
  alive "$(execd_pidfile)" || /usr/sbin/sge_execd 9>&-
  await "queue all.q@$NODE" 300 queue_ready
}

print_env() {
  cat >"$SD/env.tmp" <<EOF
export SORTIE_SGE_DIR='$SD'
export SORTIE_SGE_ROOT='$SGE_ROOT'
export SORTIE_SGE_CELL='$SGE_CELL'
export SORTIE_SGE_BIN='$BIN'
export SORTIE_SGE_NODE='$NODE'
export SORTIE_SGE_QUEUE='all.q'
export SORTIE_SGE_PE='smp'
export SORTIE_SGE_SLOTS='$SLOTS'
EOF
  chmod 0644 "$SD/env.tmp"
  mv "$SD/env.tmp" "$SD/env"
  cat "$SD/env"
}

# Readiness as the tests see it: hpcuser's qstat over the bed's sshd reaches the qmaster.
ready_check() {
  local out
  out="$(ssh_as_user 'qstat -g c' 2>&1)" || {
    echo "$out" >&2
    return 1
  }
  [[ "$out" == *all.q* ]] || {
    echo "$out" >&2
    return 1
  }
}

all_alive() { alive "$QMASTER_PID" && alive "$(execd_pidfile)"; }

cmd_up() {
  install_packages
  if [[ -s "$SD/env" ]] && all_alive && queue_ready && ready_check 2>/dev/null; then
    cat "$SD/env"
    return 0
  fi
  # hpcuser and the login sshd are the single-node bed's (idempotent; cheap when it is up).
  bash "$HERE/testbed.sh" up >/dev/null
  fix_host_names
  start_qmaster
  configure
  start_execd
  ready_check || die "Grid Engine started but hpcuser's qstat over SSH failed"
  print_env
}

# SIGTERM, then wait (zombie-aware) up to 10 s, then SIGKILL.
stop_pid() {
  local pid="$1" name="$2" i
  alive_pid "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive_pid "$pid" || return 0
    sleep 0.1
  done
  log "$name ($pid) ignored SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

cmd_down() {
  local i shepherds=() pid job
  if alive "$QMASTER_PID"; then
    # Running jobs' shepherds outlive execd: delete every job first and wait (bounded) for the queue to drain.
    timeout 10 "$BIN/qdel" -f -u '*' >/dev/null 2>&1 || true
    for ((i = 0; i < 100; i++)); do
      [[ -z "$(timeout 5 "$BIN/qstat" -u '*' 2>/dev/null || echo busy)" ]] && break
      sleep 0.1
    done
  fi
  # Whatever execd still runs (a shepherd of a job that would not die) goes with it.
  pid="$(pid_of "$(execd_pidfile)")"
  if alive_pid "$pid"; then
    mapfile -t shepherds < <(ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' ')
  fi
  stop_pid "$pid" sge_execd
  # A shepherd starts its job as a session (and process group) leader: kill the job's group, then the shepherd.
  for pid in "${shepherds[@]}"; do
    [[ -n "$pid" ]] || continue
    for job in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill -KILL -- "-$job" 2>/dev/null || true; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  stop_pid "$(pid_of "$QMASTER_PID")" sge_qmaster
  rm -f "$SPOOL"/execd/*/execd.pid "$QMASTER_PID" "$SD/env"
  log "stopped"
}

cmd_status() {
  local rc=0 f name
  for name in sge_qmaster sge_execd; do
    if [[ $name == sge_qmaster ]]; then f="$QMASTER_PID"; else f="$(execd_pidfile)"; fi
    if alive "$f"; then echo "$name: running (pid $(pid_of "$f"))"; else
      echo "$name: stopped"
      rc=3
    fi
  done
  if ((rc == 0)) && queue_ready && ready_check; then echo "sge: ready ($SD/env)"; else
    echo "sge: not ready"
    rc=3
  fi
  return "$rc"
}

install -d -m 0755 "$SD"
# One bring-up at a time; daemons are started with `9>&-` so they do not inherit (and hold forever) this lock.
exec 9>"$SD/.lock"
flock -w 120 9 || die "another Grid Engine bring-up holds $SD/.lock"

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) die "usage: $0 up|down|status (or scripts/testbed.sh sge up|down|status)" ;;
esac
