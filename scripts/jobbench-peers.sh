#!/usr/bin/env bash
# JobBench on JobStore and its peers, side by side in one run (docs/BENCHMARKS.md, issue 10):
# the JobStore release build, the hand-written C program on liblmdb (Benchmarks/peers: the
# limit), the one on SQLite (what a team would build instead) and the Swift one on GRDB.swift
# (what a Swift team would pick: Benchmarks/peers/grdb, its own package), run alternately on the
# same N and durability, every line kept in one JSONL file, then the table of medians and ratios
# (scripts/jobbench-table.py) and the charts (scripts/jobbench-chart.py, gnuplot: SVGs beside
# the JSONL file).
#
#   scripts/jobbench-peers.sh [N=200000] [full|relaxed|both=both] [runs=3] [phases]
#
# $JOBBENCH_STORES picks the stores (default: jobstore c-lmdb c-sqlite grdb; also
# jobstore-writemap: JobStore with EnvironmentOptions.writeMap, MDB_WRITEMAP). Needs liblmdb-dev,
# libsqlite3-dev and gnuplot-nox; the first build of the GRDB peer takes ~3 minutes. Stores go in $JOBBENCH_DIR (default /var/tmp/jobbench: a disk, not a tmpfs), removed after each run.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-200000}
durabilities=${2:-both}
runs=${3:-3}
phases=${4:-}
[[ $durabilities == both ]] && durabilities="full relaxed"
dir=${JOBBENCH_DIR:-/var/tmp/jobbench}
out=${JOBBENCH_OUT:-/tmp/jobbench-peers-$jobs.jsonl}
bash scripts/ensure-lmdb.sh

started=$SECONDS
swift build -c release --product jobstore --scratch-path .build-rel > /tmp/jobbench-build.log 2>&1 || { tail -30 /tmp/jobbench-build.log; exit 1; }
cc -O2 -Wall -o .build-rel/jobbench-lmdb Benchmarks/peers/jobbench-lmdb.c -llmdb -lpthread
cc -O2 -Wall -o .build-rel/jobbench-sqlite Benchmarks/peers/jobbench-sqlite.c -lsqlite3 -lpthread
stores=${JOBBENCH_STORES:-jobstore c-lmdb c-sqlite grdb}
if [[ " $stores " == *" grdb "* ]]; then
    swift build -c release --package-path Benchmarks/peers/grdb --scratch-path .build-rel/grdb > /tmp/jobbench-build.log 2>&1 \
        || { tail -30 /tmp/jobbench-build.log; exit 1; }
fi
echo "built in $((SECONDS - started)) s" >&2

phase_args=()
[[ -n $phases ]] && phase_args=(--phases "$phases")
: > "$out"
for run in $(seq "$runs"); do
    for durability in $durabilities; do
        for store in $stores; do
            rm -rf "$dir/$store"
            mkdir -p "$dir"
            case $store in
            jobstore) .build-rel/release/jobstore bench --jobs "$jobs" --durability "$durability" --dir "$dir/$store" "${phase_args[@]}" >> "$out" ;;
            jobstore-writemap) .build-rel/release/jobstore bench --jobs "$jobs" --durability "$durability" --dir "$dir/$store" --write-map "${phase_args[@]}" >> "$out" ;;
            c-lmdb) .build-rel/jobbench-lmdb --jobs "$jobs" --durability "$durability" --dir "$dir/$store" "${phase_args[@]}" >> "$out" ;;
            c-sqlite) .build-rel/jobbench-sqlite --jobs "$jobs" --durability "$durability" --dir "$dir/$store" "${phase_args[@]}" >> "$out" ;;
            grdb) .build-rel/grdb/release/jobbench-grdb --jobs "$jobs" --durability "$durability" --dir "$dir/$store" "${phase_args[@]}" >> "$out" ;;
            esac
            rm -rf "${dir:?}/$store"
            echo "run $run, $durability, $store: done at $((SECONDS - started)) s" >&2
        done
    done
done
echo "every line: $out" >&2
python3 scripts/jobbench-table.py "$out"
if command -v gnuplot > /dev/null; then python3 scripts/jobbench-chart.py "${out%.jsonl}" "$out" >&2; fi
