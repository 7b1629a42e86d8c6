#!/usr/bin/env bash
# Multi-node SLURM test bed on this one machine (`scripts/testbed.sh cluster up|down|status` runs this file).
#
# Each node is a network namespace plus a UTS namespace (its own hostname) and a mount namespace (the host's
# file system with the cluster's /etc/hosts and a node-local /tmp), joined by a bridge this script creates with
# a private subnet that exists nowhere else (10.77.0.0/24 by default; the host side of the bridge is .1). The
# namespaces get no default route, so nothing in them can reach past the bridge.
#
#   login  10.77.0.10  slurmctld + the login sshd (port 22), where the pilot's launcher ssh's to
#   cn1    10.77.0.11  slurmd + sshd        cn2 10.77.0.12 ...       cn3 10.77.0.13 ...
#
# One munged (own key and socket, path-based unix socket, so every namespace reaches it) serves them all.
# The home directory is shared (one file system), as on a real cluster. hpcuser logs in with the cluster's
# own authorized keys file (~/.ssh/authorized_keys_cluster) so the single-node bed's `up`, which rewrites
# ~/.ssh/authorized_keys, never locks us out; hpcuser's own key for node-to-node ssh is ~/.ssh/id_cluster,
# picked for the cluster's hosts by ~/.ssh/config_cluster (Included from ~/.ssh/config).
# Runs beside the single-node bed (scripts/testbed.sh): its own directory, slurm.conf, munge socket, ports
# inside its own namespaces. `down` kills every process in the namespaces, deletes them and the bridge.
set -euo pipefail

CL="${SORTIE_CLUSTER_DIR:-/var/tmp/sortie-cluster}"
NET="${SORTIE_CLUSTER_NET:-10.77.0}"
NODES="${SORTIE_CLUSTER_NODE_COUNT:-3}"
CPUS="${SORTIE_CLUSTER_CPUS:-4}"
BRIDGE=sortie-br0
PREFIX=sortie- # namespace and host-side veth names: sortie-login, sortie-cn1, ...
TB_USER=hpcuser
# OpenMPI is the default mpirun; MPICH (mpirun.mpich) beside it; mpi4py (built on OpenMPI) gives the tests a real
# MPI program without a compiler; libpmix-dev holds the libpmix.so that SLURM's `srun --mpi=pmix` loads.
PKGS=(iproute2 openssh-server slurmctld slurmd slurm-client munge openmpi-bin mpich python3-mpi4py libpmix-dev)

die() { echo "cluster: $*" >&2; exit 1; }
log() { echo "cluster: $*" >&2; }

[[ "$(id -u)" == 0 ]] || die "must run as root (creates namespaces, a bridge, a user, starts daemons)"
[[ "$CL" == /* ]] || die "SORTIE_CLUSTER_DIR must be absolute, got '$CL'"
[[ "$NET" =~ ^(10\.[0-9]+\.[0-9]+|172\.(1[6-9]|2[0-9]|3[01])\.[0-9]+)$ ]] ||
  die "SORTIE_CLUSTER_NET must be the first three octets of a private 10.x or 172.16-31.x /24, got '$NET'"
[[ "$NODES" =~ ^[1-9]$ ]] || die "SORTIE_CLUSTER_NODE_COUNT must be 1-9, got '$NODES'"

COMPUTE=()
for ((i = 1; i <= NODES; i++)); do COMPUTE+=("cn$i"); done
ALL=(login "${COMPUTE[@]}")
HOST_IP="$NET.1"
ip_of() { if [[ "$1" == login ]]; then echo "$NET.10"; else echo "$NET.1${1#cn}"; fi; }

SSH_DIR="$CL/ssh"
KEY_DIR="$CL/keys"
MUNGE_DIR="$CL/munge"
SL="$CL/slurm"
# Bind-mounted namespace files, <node>.uts and <node>.mnt. Mount namespace files may only be bound under a mount
# with private propagation, so this directory is bind-mounted onto itself and made private.
NS_DIR="$CL/ns"
export SLURM_CONF="$SL/etc/slurm.conf"
MUNGE_SOCKET="$MUNGE_DIR/run/munge.socket.2"
MUNGED_PID="$MUNGE_DIR/munged.pid"
CTLD_PID="$SL/run/slurmctld.pid"
slurmd_pid() { echo "$SL/run/slurmd-$1.pid"; }
sshd_pid() { echo "$SSH_DIR/$1/sshd.pid"; }

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

# Runs a command on a node: in its network, UTS and mount namespaces. The mount namespace is the host's file
# system (a shared home, as on a cluster) with the cluster's hosts file over /etc/hosts, so node names resolve
# inside the cluster (SLURM's PMIx, MPICH's hydra need that) while the host's /etc/hosts stays untouched, and
# a node-local /tmp ($CL/tmp/<node>): PMIx makes per-step directories there that must not collide across nodes.
on_node() {
  local n="$1"
  shift
  nsenter --net="/run/netns/$PREFIX$n" --uts="$NS_DIR/$n.uts" --mount="$NS_DIR/$n.mnt" -- "$@"
}

ssh_login() {
  timeout 20 ssh -i "$KEY_DIR/client_ed25519" -o BatchMode=yes -o ConnectTimeout=5 \
    -o UserKnownHostsFile="$SSH_DIR/known_hosts" -o StrictHostKeyChecking=yes -o LogLevel=ERROR \
    "$TB_USER@$(ip_of login)" "$@"
}

install_packages() {
  local missing=() p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then apt-get update -q >&2; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=120 "${missing[@]}" >&2
}

# As in testbed.sh (either bed may come up first): hpcuser with a '*' password so key logins work under
# UsePAM no, and `node` on sshd's default PATH.
ensure_user() {
  if ! id "$TB_USER" >/dev/null 2>&1; then useradd -m -s /bin/bash "$TB_USER"; fi
  [[ "$(getent shadow "$TB_USER" | cut -d: -f2)" == '*' ]] || usermod -p '*' "$TB_USER"
  local node
  node="$(command -v node || true)"
  [[ -n "$node" ]] || die "node is not installed on this machine"
  case "$(dirname "$node")" in
    /usr/local/bin | /usr/bin | /bin) ;;
    *) ln -sfn "$(readlink -f "$node")" /usr/local/bin/node && log "symlinked /usr/local/bin/node -> $node" ;;
  esac
}

ensure_keys() {
  install -d -m 0755 "$CL" "$SSH_DIR"
  install -d -m 0700 "$KEY_DIR"
  local n home known=''
  for n in "${ALL[@]}"; do
    install -d -m 0700 "$SSH_DIR/$n"
    [[ -s "$SSH_DIR/$n/ssh_host_ed25519_key" ]] ||
      ssh-keygen -q -t ed25519 -N '' -C "sortie-cluster-$n" -f "$SSH_DIR/$n/ssh_host_ed25519_key"
    known+="$n,$(ip_of "$n") $(cut -d' ' -f1,2 "$SSH_DIR/$n/ssh_host_ed25519_key.pub")"$'\n'
  done
  printf '%s' "$known" >"$SSH_DIR/known_hosts"
  chmod 0644 "$SSH_DIR/known_hosts"
  # The key the host side (tests, the pilot launcher) logs in to the login node with.
  [[ -s "$KEY_DIR/client_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C sortie-cluster -f "$KEY_DIR/client_ed25519"
  chmod 0600 "$KEY_DIR/client_ed25519"
  home="$(getent passwd "$TB_USER" | cut -d: -f6)"
  install -d -m 0700 -o "$TB_USER" -g "$TB_USER" "$home/.ssh"
  # hpcuser's own key for node-to-node ssh (mpirun, scp between nodes), in the shared home.
  [[ -s "$home/.ssh/id_cluster" ]] ||
    runuser -u "$TB_USER" -- ssh-keygen -q -t ed25519 -N '' -C hpcuser-cluster -f "$home/.ssh/id_cluster"
  cat "$KEY_DIR/client_ed25519.pub" "$home/.ssh/id_cluster.pub" >"$home/.ssh/authorized_keys_cluster.tmp"
  chown "$TB_USER:$TB_USER" "$home/.ssh/authorized_keys_cluster.tmp"
  chmod 0600 "$home/.ssh/authorized_keys_cluster.tmp"
  mv "$home/.ssh/authorized_keys_cluster.tmp" "$home/.ssh/authorized_keys_cluster"
  # The key and pinned host keys for the cluster's hosts; HostName also lets the host side (whose /etc/hosts
  # knows no node names) use them.
  {
    echo "# Written by scripts/testbed-cluster.sh: the cluster test bed's nodes."
    for n in "${ALL[@]}"; do printf 'Host %s %s\n  HostName %s\n' "$n" "$(ip_of "$n")" "$(ip_of "$n")"; done
    printf 'Host %s\n' "${ALL[*]} $NET.*"
    printf '  IdentityFile ~/.ssh/id_cluster\n  UserKnownHostsFile %s\n' "$SSH_DIR/known_hosts"
    printf '  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n'
  } >"$home/.ssh/config_cluster"
  chown "$TB_USER:$TB_USER" "$home/.ssh/config_cluster"
  chmod 0600 "$home/.ssh/config_cluster"
  # Include it from ~/.ssh/config (created if absent), once.
  if ! grep -qsx 'Include config_cluster' "$home/.ssh/config"; then
    { echo 'Include config_cluster'; cat "$home/.ssh/config" 2>/dev/null || true; } >"$home/.ssh/config.tmp"
    mv "$home/.ssh/config.tmp" "$home/.ssh/config"
  fi
  chown "$TB_USER:$TB_USER" "$home/.ssh/config"
  chmod 0600 "$home/.ssh/config"
}

ensure_network() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    # The subnet must be ours alone: never take over addresses this machine already uses.
    local used
    used="$(ip -o addr show to "$NET.0/24" 2>/dev/null || true)$(ip route show to match "$NET.1" | grep -v '^default' || true)"
    [[ -z "$used" ]] || die "$NET.0/24 is already in use on this machine (choose SORTIE_CLUSTER_NET): $used"
    ip link add "$BRIDGE" type bridge
    ip addr add "$HOST_IP/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  install -d -m 0755 "$NS_DIR"
  if ! findmnt -n "$NS_DIR" >/dev/null 2>&1; then
    mount --bind "$NS_DIR" "$NS_DIR"
    mount --make-private "$NS_DIR"
  fi
  local n ns
  {
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
    for n in "${ALL[@]}"; do printf '%s\t%s\n' "$(ip_of "$n")" "$n"; done
  } >"$CL/hosts"
  chmod 0644 "$CL/hosts"
  for n in "${ALL[@]}"; do
    ns="$PREFIX$n"
    # /run is not a tmpfs on every machine: a name left from before a reboot is a plain file, not a namespace.
    if ! findmnt -n "/run/netns/$ns" >/dev/null 2>&1; then
      ip netns del "$ns" 2>/dev/null || true
      ip netns add "$ns"
    fi
    if ! findmnt -n "$NS_DIR/$n.uts" >/dev/null 2>&1; then
      touch "$NS_DIR/$n.uts"
      unshare --uts="$NS_DIR/$n.uts" hostname "$n"
    fi
    if ! findmnt -n "$NS_DIR/$n.mnt" >/dev/null 2>&1; then
      touch "$NS_DIR/$n.mnt"
      install -d -m 1777 "$CL/tmp/$n"
      unshare --mount="$NS_DIR/$n.mnt" --propagation private \
        sh -c "mount --bind '$CL/hosts' /etc/hosts && mount --bind '$CL/tmp/$n' /tmp"
    fi
    if ! ip link show "$ns" >/dev/null 2>&1; then
      ip link add "$ns" type veth peer name eth0 netns "$ns"
      ip -n "$ns" addr add "$(ip_of "$n")/24" dev eth0
    fi
    ip link set "$ns" master "$BRIDGE" up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
  done
}

start_sshd() {
  local n="$1" dir="$SSH_DIR/$1"
  alive "$(sshd_pid "$n")" && return 0
  install -d -m 0755 /run/sshd
  cat >"$dir/sshd_config" <<EOF
Port 22
ListenAddress $(ip_of "$n")
HostKey $dir/ssh_host_ed25519_key
PidFile $(sshd_pid "$n")
AuthorizedKeysFile .ssh/authorized_keys_cluster
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
  /usr/sbin/sshd -t -f "$dir/sshd_config"
  on_node "$n" /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" 9>&-
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
  local n
  {
    cat <<EOF
ClusterName=sortiecl
SlurmctldHost=login($(ip_of login))
SlurmUser=slurm
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$SL/state
SlurmdSpoolDir=$SL/spool/%n
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SL/run/slurmd-%n.pid
SlurmctldLogFile=$SL/log/slurmctld.log
SlurmdLogFile=$SL/log/slurmd-%n.log
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
EOF
    for n in "${COMPUTE[@]}"; do
      echo "NodeName=$n NodeAddr=$(ip_of "$n") CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=2048 State=UNKNOWN"
    done
    echo "PartitionName=batch Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
  } >"$SLURM_CONF.tmp"
  mv "$SLURM_CONF.tmp" "$SLURM_CONF"
}

start_slurm() {
  write_slurm_conf
  alive "$CTLD_PID" || on_node login /usr/sbin/slurmctld 9>&-
  local n
  for n in "${COMPUTE[@]}"; do
    install -d -m 0755 "$SL/spool/$n"
    alive "$(slurmd_pid "$n")" || on_node "$n" /usr/sbin/slurmd 9>&-
  done
  local i idle=0 out=''
  for ((i = 0; i < 300; i++)); do
    out="$(timeout 5 sinfo -h -N -o '%N %T' 2>/dev/null || true)"
    idle="$(grep -cE ' (idle|mixed|allocated)' <<<"$out" || true)"
    ((idle == NODES)) && return 0
    sleep 0.1
  done
  die "SLURM nodes not all ready after 30 s: $(tr '\n' ' ' <<<"$out"); see $SL/log/"
}

print_env() {
  cat >"$CL/env.tmp" <<EOF
export SORTIE_CLUSTER_DIR='$CL'
export SORTIE_CLUSTER_LOGIN='$(ip_of login)'
export SORTIE_CLUSTER_HOST_IP='$HOST_IP'
export SORTIE_CLUSTER_NODES='${COMPUTE[*]}'
export SORTIE_CLUSTER_NODE_ADDRS='$(for n in "${COMPUTE[@]}"; do printf '%s ' "$(ip_of "$n")"; done | sed 's/ $//')'
export SORTIE_CLUSTER_USER='$TB_USER'
export SORTIE_CLUSTER_KEY='$KEY_DIR/client_ed25519'
export SORTIE_CLUSTER_KNOWN_HOSTS='$SSH_DIR/known_hosts'
export SORTIE_CLUSTER_SLURM_CONF='$SLURM_CONF'
EOF
  chmod 0644 "$CL/env.tmp"
  mv "$CL/env.tmp" "$CL/env"
  cat "$CL/env"
}

# Readiness as the tests see it: key login to the login node, every compute node idle, node on PATH.
ready_check() {
  local out
  out="$(ssh_login 'sinfo -h -N -o "%N %T" && command -v node' 2>&1)" || {
    echo "$out" >&2
    return 1
  }
  local n
  for n in "${COMPUTE[@]}"; do
    grep -qE "^$n (idle|mixed|allocated)" <<<"$out" || {
      echo "$out" >&2
      return 1
    }
  done
  [[ "$out" == */node* ]] || {
    echo "$out" >&2
    return 1
  }
}

all_alive() {
  local n
  alive "$MUNGED_PID" && alive "$CTLD_PID" || return 1
  for n in "${ALL[@]}"; do alive "$(sshd_pid "$n")" || return 1; done
  for n in "${COMPUTE[@]}"; do alive "$(slurmd_pid "$n")" || return 1; done
}

cmd_up() {
  install_packages
  if [[ -s "$CL/env" ]] && all_alive && ready_check 2>/dev/null; then
    cat "$CL/env"
    return 0
  fi
  ensure_user
  ensure_keys
  ensure_network
  start_munge
  local n
  for n in "${ALL[@]}"; do start_sshd "$n"; done
  start_slurm
  ready_check || die "cluster started but the SSH readiness check failed; see $SSH_DIR/login/sshd.log"
  print_env
}

# SIGTERM, wait up to 10 s (zombie-aware), then SIGKILL.
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

# Every process still in one of our namespaces (job steps, ssh sessions, orted, agents) is ours: TERM, then KILL.
kill_ns_processes() {
  local n ns pids=() i
  for n in "${ALL[@]}"; do
    ns="$PREFIX$n"
    [[ -e "/run/netns/$ns" ]] || continue
    mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null || true)
  done
  ((${#pids[@]} == 0)) && return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    local left=0 p
    for p in "${pids[@]}"; do alive_pid "$p" && left=1; done
    ((left == 0)) && return 0
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

cmd_down() {
  local n i
  if alive "$CTLD_PID"; then
    timeout 10 scancel --user="$TB_USER" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      [[ -z "$(timeout 5 squeue -h 2>/dev/null || echo busy)" ]] && break
      sleep 0.1
    done
  fi
  for n in "${COMPUTE[@]}"; do stop_pidfile "$(slurmd_pid "$n")" "slurmd on $n"; done
  stop_pidfile "$CTLD_PID" slurmctld
  for n in "${ALL[@]}"; do stop_pidfile "$(sshd_pid "$n")" "sshd on $n"; done
  kill_ns_processes
  stop_pidfile "$MUNGED_PID" munged
  for n in "${ALL[@]}"; do
    # Deleting the namespace deletes its veth end, and with it the host end.
    [[ -e "/run/netns/$PREFIX$n" ]] && ip netns del "$PREFIX$n"
    local f
    for f in "$NS_DIR/$n.uts" "$NS_DIR/$n.mnt"; do
      if findmnt -n "$f" >/dev/null 2>&1; then umount "$f"; fi
      rm -f "$f"
    done
  done
  if findmnt -n "$NS_DIR" >/dev/null 2>&1; then umount "$NS_DIR"; fi
  rm -rf "$CL/tmp"
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
  rm -f "$CL/env"
  log "stopped"
}

cmd_status() {
  local rc=0 n
  report() { # name pidfile
    if alive "$2"; then echo "$1: running (pid $(pid_of "$2"))"; else
      echo "$1: stopped"
      rc=3
    fi
  }
  report munged "$MUNGED_PID"
  report "slurmctld on login" "$CTLD_PID"
  for n in "${ALL[@]}"; do report "sshd on $n" "$(sshd_pid "$n")"; done
  for n in "${COMPUTE[@]}"; do report "slurmd on $n" "$(slurmd_pid "$n")"; done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then echo "bridge $BRIDGE: $HOST_IP/24"; else
    echo "bridge $BRIDGE: absent"
    rc=3
  fi
  if ((rc == 0)) && ready_check; then echo "cluster: ready ($CL/env)"; else
    echo "cluster: not ready"
    rc=3
  fi
  return "$rc"
}

install -d -m 0755 "$CL"
exec 9>"$CL/.lock"
flock -w 120 9 || die "another cluster bring-up holds $CL/.lock"

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) die "usage: scripts/testbed.sh cluster up|down|status" ;;
esac
