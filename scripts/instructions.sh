#!/usr/bin/env bash
# Instructions per operation of each JobBench phase, JobStore beside the C program on LMDB,
# counted by valgrind's callgrind (stable where wall time on this shared machine is not).
#
#   scripts/instructions.sh [N] [phase,phase,…]     # default N = 20,000 and every sync phase
#
# Each phase runs in its own fresh store (load, then the phase) under callgrind, which counts
# only inside the phase's function (`--toggle-collect`: `BenchRunner`'s phase functions are
# `@inline(never)`, the C peer's are functions of their own), so load, set-up and the final
# checks are left out; get-cached also leaves out its untimed warm-up pass (`warmCache`). The
# count is divided by the phase's operations (its JSON line's `ops`: jobs for load and the batch
# phases, rows for time-range, queries of a page of 100 for pending-oldest). The concurrent
# phases are left out: callgrind runs one thread at a time. Only user space is counted: the
# kernel's side of a commit's writes (pwrite) is not. Prints a Markdown table; every line goes to
# $INSTRUCTIONS_OUT (default /tmp/instructions-N.jsonl). With INSTRUCTIONS_KEEP=DIR each run's
# callgrind output stays as DIR/STORE.PHASE.out, for `callgrind_annotate --inclusive=yes`.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-20000}
phases=${2:-load,insert-single,get,get-cached,pending-oldest,count-by-state,time-range,transition,transition-batch,claim,claim-batch}
out=${INSTRUCTIONS_OUT:-/tmp/instructions-$jobs.jsonl}
work=$(mktemp -d /tmp/instructions.XXXXXX)
trap 'rm -rf "$work"' EXIT
keep=${INSTRUCTIONS_KEEP:-}
if [[ -n $keep ]]; then mkdir -p "$keep"; fi
bash scripts/ensure-lmdb.sh
command -v valgrind > /dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 1; }

swift build -c release --product jobstore --scratch-path .build-rel > "$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
# valgrind 3.19 cannot read the Swift binary's DWARF ("Possibly corrupted debuginfo file"): a
# copy without it (the symbols stay), and the shim that lets dispatch_main run under valgrind.
objcopy --strip-debug .build-rel/release/jobstore "$work/jobstore"
cc -O2 -shared -fPIC -o "$work/sigsuspend-shim.so" scripts/valgrind/sigsuspend-shim.c
cc -O2 -g -Wall -o "$work/jobbench-lmdb" Benchmarks/peers/jobbench-lmdb.c -llmdb -lpthread

# The phase's function in each program (callgrind's --toggle-collect).
swift_function() {
    case $1 in
    load) echo '$s8jobstore11BenchRunnerV4loadyyKF' ;;
    insert-single) echo '$s8jobstore11BenchRunnerV12insertSingleyyKF' ;;
    get | get-cached) echo '$s8jobstore11BenchRunnerV3get6cachedySb_tKF' ;;
    pending-oldest) echo '$s8jobstore11BenchRunnerV18pendingOldestViewsyyKF' ;;
    pending-oldest-jobs) echo '$s8jobstore11BenchRunnerV17pendingOldestJobsyyKF' ;;
    count-by-state) echo '$s8jobstore11BenchRunnerV12countByStateyyKF' ;;
    time-range) echo '$s8jobstore11BenchRunnerV9timeRangeyyKF' ;;
    scan-filter) echo '$s8jobstore11BenchRunnerV10scanFilteryyKF' ;;
    transition) echo '$s8jobstore11BenchRunnerV10transitionyyKF' ;;
    transition-batch) echo '$s8jobstore11BenchRunnerV15transitionBatchyyKF' ;;
    claim) echo '$s8jobstore11BenchRunnerV5claimyyKF' ;;
    claim-batch) echo '$s8jobstore11BenchRunnerV10claimBatchyyKF' ;;
    *) echo "no counted function for phase $1" >&2; exit 1 ;;
    esac
}

# count STORE PHASE TOGGLES… : runs the phase, prints one JSON line with instructions per op.
count() {
    local store=$1 phase=$2; shift 2
    local toggles=() arg phase_arg=$phase
    for arg in "$@"; do toggles+=("--toggle-collect=$arg"); done
    # A phase that needs an earlier one runs after it (only the phase's own function counts).
    case $phase in
    pending-oldest-jobs) phase_arg=pending-oldest ;;
    transition-batch) phase_arg=transition,transition-batch ;;
    esac
    rm -rf "$work/store"
    local command=("$work/jobbench-lmdb") preload=
    [[ $store == jobstore ]] && command=("$work/jobstore" bench) && preload=$work/sigsuspend-shim.so
    LD_PRELOAD=$preload valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" "${toggles[@]}" \
        "${command[@]}" --jobs "$jobs" --durability relaxed --dir "$work/store" --phases "$phase_arg" \
        > "$work/lines" 2> "$work/valgrind.log" || { tail -20 "$work/valgrind.log" >&2; exit 1; }
    local collected ops
    collected=$(sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$work/valgrind.log")
    ops=$(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    line = json.loads(line)
    if line["phase"] == sys.argv[2]: print(line["ops"]); break' "$work/lines" "$phase")
    [[ -n $collected && -n $ops ]] || { tail -20 "$work/valgrind.log" >&2; echo "$store $phase: no count" >&2; exit 1; }
    if [[ -n $keep ]]; then cp "$work/callgrind.out" "$keep/$store.$phase.out"; fi
    echo "{\"store\":\"$store\",\"phase\":\"$phase\",\"jobs\":$jobs,\"ops\":$ops,\"instructions\":$collected,\"per_op\":$((collected / ops))}" | tee -a "$out"
}

# The mangled name of BenchRunner's method `name`, looked up in the binary: it names the module of
# every type in its signature, so a hard-coded one goes stale silently when a type moves (the
# toggle then matches nothing and the untimed work is counted: 2026-12-07, when JobID moved to
# JobCore). Exactly one match, or the script stops.
bench_function() {
    local found
    found=$(nm "$work/jobstore" | awk '{print $3}' | grep -E "^\\\$s8jobstore11BenchRunnerV[0-9]+$1.*KF\$" | sort -u)
    if [[ $(wc -l <<< "$found") -ne 1 || -z $found ]]; then
        echo "instructions.sh: expected one BenchRunner.$1 in the binary, found: ${found:-none}" >&2
        exit 1
    fi
    echo "$found"
}
warm_cache=$(bench_function warmCache)
random_job=$(bench_function randomJob)
check_claimed=$(bench_function checkClaimed)

: > "$out"
started=$SECONDS
for phase in ${phases//,/ }; do
    # A second toggle inside the phase's function turns counting off while it runs: get-cached's
    # warm-up pass; the transitions' untimed picks of a random job in the right state; the claims'
    # check of what they claimed, after the timing.
    case $phase in
    get-cached) count jobstore "$phase" "$(swift_function "$phase")" "$warm_cache" ;;
    pending-oldest-jobs) count jobstore "$phase" "$(swift_function "$phase")" ;;
    transition | transition-batch)
        count jobstore "$phase" "$(swift_function "$phase")" "$random_job"
        count c-lmdb "$phase" "phase_${phase//-/_}" random_job ;;
    claim | claim-batch)
        count jobstore "$phase" "$(swift_function "$phase")" "$check_claimed"
        count c-lmdb "$phase" "phase_${phase//-/_}" check_claimed ;;
    *)
        count jobstore "$phase" "$(swift_function "$phase")"
        count c-lmdb "$phase" "phase_${phase//-/_}" ;;
    esac
done
echo "counted in $((SECONDS - started)) s; lines: $out" >&2

python3 - "$out" <<'EOF'
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1])]
per = {(l["store"], l["phase"]): l["per_op"] for l in lines}
print(f"\ninstructions per operation, N = {lines[0]['jobs']:,} (callgrind; relaxed)\n")
print("| phase | jobstore | c-lmdb | jobstore / c-lmdb |")
print("|---|---:|---:|---:|")
for phase in dict.fromkeys(l["phase"] for l in lines):
    js, c = per.get(("jobstore", phase)), per.get(("c-lmdb", phase))
    ratio = f"{js / c:.2f} ×" if js and c else "—"
    print(f"| {phase} | {js:,} | {c:,} | {ratio} |" if c else f"| {phase} | {js:,} | — | — |")
EOF
