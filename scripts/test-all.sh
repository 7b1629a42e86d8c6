#!/usr/bin/env bash
# Every test, against real engines: typecheck, lint, then the vitest suites with
#  - dynalite (always) and Amazon's DynamoDB Local (needs Java 17) for the store suite,
#  - the real sshd + SLURM test bed (scripts/testbed.sh, needs root) for the SSH/batch suites.
# What cannot start here is said once, up front; the suites that need it then say why they skip.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v java >/dev/null && java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; then
  export SORTIE_TEST_DYNAMODB_LOCAL=1
else
  echo "test-all: no Java 17+: the store suite runs on dynalite only (apt-get install -y openjdk-17-jre-headless)" >&2
fi

started_testbed=0
if [[ "$(id -u)" == 0 ]]; then
  if ! bash scripts/testbed.sh status >/dev/null 2>&1; then
    bash scripts/testbed.sh up >/dev/null
    started_testbed=1
  fi
else
  echo "test-all: not root: the SSH/SLURM suites skip unless the test bed is already up" >&2
fi
cleanup() { if [[ $started_testbed == 1 ]]; then bash scripts/testbed.sh down >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

npm run typecheck
npm run lint
npx vitest run --coverage
