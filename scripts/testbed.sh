#!/usr/bin/env bash
# Real HPC test bed on this machine: an sshd "login node" on 127.0.0.1:2222 (key-only, user hpcuser) and a
# single-node SLURM 22.05 cluster (munge, slurmctld, slurmd). Recipe and gotchas:
# /work/shared/reference/hpc-testbed.md. Must run as root; no systemd, so daemons are tracked by pid files only.
#
#   scripts/testbed.sh up       # idempotent; prints `export` lines, also written to $SORTIE_TESTBED_DIR/env
#   scripts/testbed.sh status   # rc 0 when every daemon is alive and SSH+SLURM answer
#   scripts/testbed.sh down     # cancel hpcuser's jobs, stop daemons by pid; bounded, never hangs
#   scripts/testbed.sh cluster up|down|status   # the multi-node cluster: scripts/testbed-cluster.sh
#   scripts/testbed.sh sge up|down|status       # Grid Engine on this host: scripts/testbed-sge.sh
set -euo pipefail

TB="${SORTIE_TESTBED_DIR:-/var/tmp/sortie-testbed}"
SSH_PORT="${SORTIE_TESTBED_SSH_PORT:-2222}"
TB_USER=hpcuser
PKGS=(openssh-server slurmctld slurmd slurm-client munge)
NODE_NAME="$(hostname -s)"

die() { echo "testbed: $*" >&2; exit 1; }
log() { echo "testbed: $*" >&2; }

[[ "$(id -u)" == 0 ]] || die "must run as root (creates a user, starts daemons)"
# The multi-node cluster (network + UTS namespaces on a bridge) is its own script with its own state and lock.
if [[ "${1:-}" == cluster ]]; then
  shift
  exec bash "$(dirname "$0")/testbed-cluster.sh" "$@"
fi
# Grid Engine on this host, reached over this bed's sshd: its own script, state directory and lock.
if [[ "${1:-}" == sge ]]; then
  shift
  exec bash "$(dirname "$0")/testbed-sge.sh" "$@"
fi
# sshd's -f needs an absolute path (relative paths break re-exec'd children silently).
[[ "$TB" == /* ]] || die "SORTIE_TESTBED_DIR must be absolute, got '$TB'"

SSH_DIR="$TB/ssh"
KEY_DIR="$TB/keys"
MUNGE_DIR="$TB/munge"
SL="$TB/slurm"
export SLURM_CONF="$SL/etc/slurm.conf"
SSHD_PID="$SSH_DIR/sshd.pid"
MUNGED_PID="$MUNGE_DIR/munged.pid"
CTLD_PID="$SL/run/slurmctld.pid"
SLURMD_PID="$SL/run/slurmd.pid"
MUNGE_SOCKET="$MUNGE_DIR/run/munge.socket.2"

# A pid counts as alive only if /proc/PID/stat exists and is not a zombie: PID 1 here reaps slowly (~2 s),
# and `kill -0` succeeds on zombies.
alive_pid() {
  local pid="$1" stat
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z ]]
}
pid_of() { [[ -s "$1" ]] && tr -dc 0-9 <"$1" || true; }
alive() { alive_pid "$(pid_of "$1")"; }

ssh_as_user() {
  timeout 15 ssh -i "$KEY_DIR/client_ed25519" -p "$SSH_PORT" -o BatchMode=yes -o ConnectTimeout=5 \
    -o UserKnownHostsFile="$SSH_DIR/known_hosts" -o StrictHostKeyChecking=yes -o LogLevel=ERROR \
    "$TB_USER@127.0.0.1" "$@"
}

install_packages() {
  local missing=() p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  # Fresh images have no package lists; an update is only needed then.
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then apt-get update -q >&2; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=120 "${missing[@]}" >&2
}

ensure_user() {
  if ! id "$TB_USER" >/dev/null 2>&1; then useradd -m -s /bin/bash "$TB_USER"; fi
  # '*' = no usable password but not locked; sshd with UsePAM no refuses '!' accounts even for keys.
  [[ "$(getent shadow "$TB_USER" | cut -d: -f2)" == '*' ]] || usermod -p '*' "$TB_USER"
  # Jobs run `node` on the "resource": sshd's default PATH is /usr/local/bin:/usr/bin:/bin, so a node that
  # lives elsewhere (nvm, /opt) gets a symlink in /usr/local/bin.
  local node
  node="$(command -v node || true)"
  [[ -n "$node" ]] || die "node is not installed on this machine"
  case "$(dirname "$node")" in
    /usr/local/bin | /usr/bin | /bin) ;;
    *) ln -sfn "$(readlink -f "$node")" /usr/local/bin/node && log "symlinked /usr/local/bin/node -> $node" ;;
  esac
}

ensure_keys() {
  install -d -m 0755 "$TB"
  install -d -m 0700 "$SSH_DIR" "$KEY_DIR"
  [[ -s "$SSH_DIR/ssh_host_ed25519_key" ]] ||
    ssh-keygen -q -t ed25519 -N '' -C sortie-testbed-host -f "$SSH_DIR/ssh_host_ed25519_key"
  [[ -s "$KEY_DIR/client_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C sortie-testbed -f "$KEY_DIR/client_ed25519"
  # A valid key that is simply not authorized: negative tests for authentication failures.
  [[ -s "$KEY_DIR/wrong_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C sortie-wrong -f "$KEY_DIR/wrong_ed25519"
  chmod 0600 "$KEY_DIR"/*_ed25519
  local home
  home="$(getent passwd "$TB_USER" | cut -d: -f6)"
  install -d -m 0700 -o "$TB_USER" -g "$TB_USER" "$home/.ssh"
  install -m 0600 -o "$TB_USER" -g "$TB_USER" "$KEY_DIR/client_ed25519.pub" "$home/.ssh/authorized_keys"
  echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$SSH_DIR/ssh_host_ed25519_key.pub")" >"$SSH_DIR/known_hosts"
}

start_sshd() {
  alive "$SSHD_PID" && return 0
  install -d -m 0755 /run/sshd # compiled-in privilege separation dir
  cat >"$SSH_DIR/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSH_DIR/ssh_host_ed25519_key
PidFile $SSHD_PID
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $TB_USER
UsePAM no
X11Forwarding no
PrintMotd no
MaxSessions 50
MaxStartups 50:30:100
Subsystem sftp internal-sftp
SetEnv SLURM_CONF=$SLURM_CONF
LogLevel VERBOSE
EOF
  /usr/sbin/sshd -t -f "$SSH_DIR/sshd_config"
  /usr/sbin/sshd -f "$SSH_DIR/sshd_config" -E "$SSH_DIR/sshd.log" 9>&-
}

start_munge() {
  install -d -m 0711 -o munge -g munge "$MUNGE_DIR"
  install -d -m 0755 -o munge -g munge "$MUNGE_DIR/run"
  alive "$MUNGED_PID" && return 0
  [[ -s "$MUNGE_DIR/munge.key" ]] ||
    runuser -u munge -- mungekey --create --keyfile="$MUNGE_DIR/munge.key" --bits=1024
  runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
    --log-file="$MUNGE_DIR/munged.log" --pid-file="$MUNGED_PID" --seed-file="$MUNGE_DIR/munged.seed" 9>&-
}

write_slurm_conf() {
  install -d -m 0755 "$SL" "$SL/etc" "$SL/run" "$SL/spool"
  install -d -m 0755 -o slurm -g slurm "$SL/state" "$SL/log"
  # NoInAddrAny/NoCtldInAddrAny make slurmd/slurmctld bind the address the node name resolves to
  # (127.0.0.1 via NodeAddr and /etc/hosts) instead of 0.0.0.0.
  cat >"$SLURM_CONF.tmp" <<EOF
ClusterName=sortietb
SlurmctldHost=$NODE_NAME(127.0.0.1)
SlurmUser=slurm
SlurmctldPort=6817
SlurmdPort=6818
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$SL/state
SlurmdSpoolDir=$SL/spool
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$SL/log/slurmctld.log
SlurmdLogFile=$SL/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobContainerType=job_container/none
SwitchType=switch/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SL/log/jobcomp.txt
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=300
MailProg=/bin/true
NodeName=$NODE_NAME NodeAddr=127.0.0.1 CPUs=8 Sockets=1 CoresPerSocket=8 ThreadsPerCore=1 RealMemory=4096 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$SLURM_CONF.tmp" "$SLURM_CONF"
}

start_slurm() {
  write_slurm_conf
  alive "$CTLD_PID" || /usr/sbin/slurmctld 9>&-
  alive "$SLURMD_PID" || /usr/sbin/slurmd 9>&-
  local i state=''
  for ((i = 0; i < 150; i++)); do
    state="$(timeout 5 sinfo -h -o '%T' 2>/dev/null | head -1 || true)"
    [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* ]] && return 0
    sleep 0.1
  done
  die "SLURM node not ready after 15 s (state '$state'); see $SL/log/"
}

print_env() {
  local hostkey
  hostkey="$(cut -d' ' -f1,2 "$SSH_DIR/ssh_host_ed25519_key.pub")"
  cat >"$TB/env.tmp" <<EOF
export SORTIE_TESTBED_DIR='$TB'
export SORTIE_TESTBED_HOST='127.0.0.1'
export SORTIE_TESTBED_PORT='$SSH_PORT'
export SORTIE_TESTBED_USER='$TB_USER'
export SORTIE_TESTBED_KEY='$KEY_DIR/client_ed25519'
export SORTIE_TESTBED_WRONG_KEY='$KEY_DIR/wrong_ed25519'
export SORTIE_TESTBED_HOST_KEY='$hostkey'
export SORTIE_TESTBED_KNOWN_HOST='[127.0.0.1]:$SSH_PORT $hostkey'
export SORTIE_TESTBED_SLURM_CONF='$SLURM_CONF'
EOF
  chmod 0644 "$TB/env.tmp"
  mv "$TB/env.tmp" "$TB/env"
  cat "$TB/env"
}

# Readiness as the tests see it: key login over the test sshd, SLURM answers, node is on PATH.
ready_check() {
  local out
  out="$(ssh_as_user 'sinfo -h -o "%P %a %T" && command -v node' 2>&1)" || {
    echo "$out" >&2
    return 1
  }
  [[ "$out" == *debug*up* && "$out" == *node* ]] || {
    echo "$out" >&2
    return 1
  }
}

all_alive() { alive "$SSHD_PID" && alive "$MUNGED_PID" && alive "$CTLD_PID" && alive "$SLURMD_PID"; }

cmd_up() {
  install_packages
  # The second `up` is a cheap check: every daemon alive and answering means nothing to do.
  if [[ -s "$TB/env" ]] && all_alive && ready_check 2>/dev/null; then
    cat "$TB/env"
    return 0
  fi
  ensure_user
  ensure_keys
  start_sshd
  start_munge
  start_slurm
  ready_check || die "test bed started but the SSH readiness check failed; see $SSH_DIR/sshd.log"
  print_env
}

# SIGTERM, then wait (zombie-aware) up to 10 s, then SIGKILL; never blocks longer than ~11 s per daemon.
stop_pidfile() {
  local f="$1" name="$2" pid i
  pid="$(pid_of "$f")"
  if ! alive_pid "$pid"; then
    rm -f "$f"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive_pid "$pid" || break
    sleep 0.1
  done
  if alive_pid "$pid"; then
    log "$name ($pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

cmd_down() {
  # Running jobs' slurmstepd outlive slurmd, so cancel first and wait (bounded) for the queue to drain.
  if alive "$CTLD_PID"; then
    timeout 10 scancel --user="$TB_USER" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
      [[ -z "$(timeout 5 squeue -h 2>/dev/null || echo busy)" ]] && break
      sleep 0.1
    done
  fi
  stop_pidfile "$SLURMD_PID" slurmd
  stop_pidfile "$CTLD_PID" slurmctld
  stop_pidfile "$MUNGED_PID" munged
  stop_pidfile "$SSHD_PID" sshd
  rm -f "$TB/env"
  log "stopped"
}

cmd_status() {
  local rc=0 f name
  for name in sshd munged slurmctld slurmd; do
    case "$name" in
      sshd) f="$SSHD_PID" ;; munged) f="$MUNGED_PID" ;; slurmctld) f="$CTLD_PID" ;; slurmd) f="$SLURMD_PID" ;;
    esac
    if alive "$f"; then echo "$name: running (pid $(pid_of "$f"))"; else
      echo "$name: stopped"
      rc=3
    fi
  done
  if ((rc == 0)) && ready_check; then echo "ssh+slurm: ready ($TB/env)"; else
    echo "ssh+slurm: not ready"
    rc=3
  fi
  return "$rc"
}

install -d -m 0755 "$TB"
# One bring-up at a time: CI and several test workers may call `up` concurrently. Daemons are started with
# `9>&-` so they do not inherit (and hold forever) this lock.
exec 9>"$TB/.lock"
flock -w 120 9 || die "another testbed.sh holds $TB/.lock"

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) die "usage: $0 up|down|status, or $0 cluster|sge up|down|status" ;;
esac
