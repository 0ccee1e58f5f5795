#!/usr/bin/env bash
# JobBench end to end at a small N, every store, so that the benchmark programs keep working and
# their correctness checks keep passing (each exits non-zero when one fails): `jobstore bench`
# on LMDB (as is and with --write-map) and (when JOBSTORE_POSTGRES_URL is set) on PostgreSQL,
# the C peers on liblmdb and SQLite. Figures at this N mean nothing; scripts/jobbench-peers.sh
# measures.
#
#   scripts/jobbench-smoke.sh [N=2000]        those stores
#   scripts/jobbench-smoke.sh [N=2000] grdb   the GRDB.swift peer alone (its own package: a
#                                             first build takes minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-2000}
work=$(mktemp -d /tmp/jobbench-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT
run() {
    local name=$1
    shift
    "$@" > "$work/$name.jsonl" 2> "$work/$name.err" || { cat "$work/$name.err"; echo "$name: failed" >&2; exit 1; }
    local phases
    phases=$(grep -c '"phase"' "$work/$name.jsonl")
    echo "$name: $phases lines, checks passed"
}
if [[ ${2:-} == grdb ]]; then
    swift build --package-path Benchmarks/peers/grdb --scratch-path .build-grdb > "$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
    run grdb "$(swift build --package-path Benchmarks/peers/grdb --scratch-path .build-grdb --show-bin-path)/jobbench-grdb" \
        --jobs "$jobs" --durability relaxed --dir "$work/grdb"
    python3 scripts/jobbench-table.py "$work"/*.jsonl > /dev/null
    exit 0
fi
swift build --product jobstore --traits Dashboard,Postgres > "$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
cc -O2 -Wall -Werror -o "$work/jobbench-lmdb" Benchmarks/peers/jobbench-lmdb.c -llmdb -lpthread
cc -O2 -Wall -Werror -o "$work/jobbench-sqlite" Benchmarks/peers/jobbench-sqlite.c -lsqlite3 -lpthread
bin=$(swift build --product jobstore --traits Dashboard,Postgres --show-bin-path)/jobstore
run jobstore "$bin" bench --jobs "$jobs" --durability relaxed --dir "$work/jobstore"
run jobstore-writemap "$bin" bench --jobs "$jobs" --durability relaxed --dir "$work/jobstore-writemap" --write-map
run c-lmdb "$work/jobbench-lmdb" --jobs "$jobs" --durability relaxed --dir "$work/c-lmdb"
run c-sqlite "$work/jobbench-sqlite" --jobs "$jobs" --durability relaxed --dir "$work/c-sqlite"
if [[ -n ${JOBSTORE_POSTGRES_URL:-} ]]; then
    database=jobbench_smoke_$$
    server=${JOBSTORE_POSTGRES_URL%/*}
    psql "$JOBSTORE_POSTGRES_URL" -q -c "CREATE DATABASE $database"
    run jobstore-postgres "$bin" bench --backend postgres --url "$server/$database" --jobs "$jobs" --durability relaxed
    psql "$JOBSTORE_POSTGRES_URL" -q -c "DROP DATABASE $database"
else
    echo "jobstore-postgres: skipped (set JOBSTORE_POSTGRES_URL)"
fi
python3 scripts/jobbench-table.py "$work"/*.jsonl > /dev/null
