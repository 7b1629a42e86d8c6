#!/usr/bin/env bash
# Every test, against real engines: typecheck, lint, then the vitest suites with
#  - dynalite (always) and Amazon's DynamoDB Local (needs Java 17) for the store suite,
#  - the real sshd + SLURM test bed (scripts/testbed.sh, needs root) for the SSH/batch suites,
#  - the multi-node SLURM cluster (scripts/testbed.sh cluster, needs root) for test/cluster.test.ts,
#  - Grid Engine on this host (scripts/testbed.sh sge, needs root) for test/ssh-sge.test.ts.
# What cannot start here is said once, up front; the suites that need it then say why they skip.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v java >/dev/null && java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; then
  export SORTIE_TEST_DYNAMODB_LOCAL=1
else
  echo "test-all: no Java 17+: the store suite runs on dynalite only (apt-get install -y openjdk-17-jre-headless)" >&2
fi

# Whatever this run brings up it takes down again, also when a bring-up fails half way.
started_testbed=0
started_cluster=0
started_sge=0
cleanup() {
  if [[ $started_sge == 1 ]]; then bash scripts/testbed.sh sge down >/dev/null 2>&1 || true; fi
  if [[ $started_cluster == 1 ]]; then bash scripts/testbed.sh cluster down >/dev/null 2>&1 || true; fi
  if [[ $started_testbed == 1 ]]; then bash scripts/testbed.sh down >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

if [[ "$(id -u)" == 0 ]]; then
  # The endpoint suite runs this checkout's CLI as the bed's hpcuser: a checkout in a private folder (mktemp -d
  # makes it 0700) must let that user in. Only the checkout's own folder is opened; git made its files 644/755.
  chmod a+rx .
  if ! bash scripts/testbed.sh status >/dev/null 2>&1; then
    started_testbed=1
    bash scripts/testbed.sh up >/dev/null
  fi
  # Grid Engine runs beside SLURM on this host and is reached over the same sshd. It needs this host's name to
  # resolve to a loopback address (traffic stays on 127.0.0.0/8); where it does not (a container whose name is
  # its bridge address) that is said here and its suite skips; elsewhere a failing `up` fails the run.
  if [[ "$(getent ahostsv4 "$(hostname)" | awk 'NR == 1 { print $1 }')" != 127.* ]]; then
    echo "test-all: this host's name does not resolve to a loopback address: the Grid Engine suite skips" >&2
  elif ! bash scripts/testbed.sh sge status >/dev/null 2>&1; then
    started_sge=1
    bash scripts/testbed.sh sge up >/dev/null
  fi
else
  echo "test-all: not root: the SSH/SLURM/Grid Engine suites skip unless their test beds are already up" >&2
fi
# The multi-node cluster needs network, UTS and mount namespaces and a bridge: where they cannot be made (a container
# without CAP_SYS_ADMIN/CAP_NET_ADMIN) that is said here and its suite skips; elsewhere a failing `up` fails the run.
if [[ "$(id -u)" == 0 ]]; then
  if ! unshare --net --uts --mount true 2>/dev/null; then
    echo "test-all: cannot create network namespaces here: the multi-node cluster suite skips" >&2
  elif ! bash scripts/testbed.sh cluster status >/dev/null 2>&1; then
    started_cluster=1
    bash scripts/testbed.sh cluster up >/dev/null
  fi
fi

npm run typecheck
npm run lint
npx vitest run --coverage
