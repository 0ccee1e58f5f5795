#!/usr/bin/env bash
# The test suite: Swift Testing on the real LMDB, each test in its own temporary directory; the
# conformance suite on PostgreSQL too. Those cases need a server: when JOBSTORE_POSTGRES_URL is
# not set and PostgreSQL is installed (apt-get install postgresql), a private one is started for
# this run (scripts/postgres.sh) and stopped after; without either, they are skipped, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-lmdb.sh
if [[ -z ${JOBSTORE_POSTGRES_URL:-} ]] && compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
    export JOBSTORE_PG_DIR=/tmp/jobstore-postgres-test-$$ JOBSTORE_PG_PORT=$((56000 + $$ % 1000))
    eval "$(scripts/postgres.sh start)"
    trap 'scripts/postgres.sh stop' EXIT
    echo "PostgreSQL cases: a private server at $JOBSTORE_POSTGRES_URL"
fi
swift test "$@"
