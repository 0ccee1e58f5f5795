#!/usr/bin/env bash
# Fuzzes every decoder of stored data, and the admin tool's import parser, with libFuzzer and
# AddressSanitizer, starting from the
# seed corpus in Fuzz/corpus/<target>/ (new inputs libFuzzer finds go to a scratch copy).
#
#   scripts/fuzz.sh [RUNS [TARGET…]]   RUNS executions per target (default 100000), every target
#                                      or the ones named; prints each count
#
# A crash leaves libFuzzer's crash-* file in the current directory and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100000}
targets=("${@:2}")
[ ${#targets[@]} -eq 0 ] && targets=(job-record pipeline-record events keys meta-records import-line)
bash scripts/ensure-lmdb.sh
started=$SECONDS
(cd Fuzz && swift build -c release --product JobStoreFuzzer \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library > /tmp/jobstore-fuzz-build.log 2>&1) \
    || { tail -30 /tmp/jobstore-fuzz-build.log; exit 1; }
echo "built the fuzzer in $((SECONDS - started)) s"
fuzzer=Fuzz/.build/release/JobStoreFuzzer
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    cp Fuzz/corpus/$target/* "$scratch/$target/" 2>/dev/null || true
    started=$SECONDS
    # import-line: JSON, with its keys and tokens as a dictionary; its store goes in the scratch directory.
    dictionary=()
    [ -f Fuzz/$target.dict ] && dictionary=(-dict=Fuzz/$target.dict)
    TMPDIR="$scratch" JOBSTORE_FUZZ_TARGET=$target "$fuzzer" -runs="$runs" -max_len=4096 -timeout=10 "${dictionary[@]}" "$scratch/$target" > "$scratch/$target.log" 2>&1 \
        || { tail -40 "$scratch/$target.log"; echo "fuzz target $target FAILED"; exit 1; }
    done_line=$(grep -E "^Done [0-9]+ runs" "$scratch/$target.log" | tail -1)
    echo "$target: ${done_line:-?} (corpus $(ls "$scratch/$target" | wc -l) inputs, $((SECONDS - started)) s, no crash)"
done
