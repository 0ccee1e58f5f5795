#!/usr/bin/env bash
# The whole test suite under a sanitizer, in its own build directory; fails on any report.
#
#   scripts/sanitize.sh thread      ThreadSanitizer (the project's locks are pthread mutexes it sees)
#   scripts/sanitize.sh address     AddressSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-thread}
if [[ $kind == address ]]; then
    # Memory errors only: LeakSanitizer reports what is still allocated when a process exits —
    # XCTest's and Foundation.Process's own objects, and the helper processes' open stores —
    # none of it a leak of a running program.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
fi
bash scripts/ensure-lmdb.sh
started=$SECONDS
swift build --build-tests --sanitize="$kind" --scratch-path ".build-$kind-sanitizer" > "/tmp/jobstore-$kind-build.log" 2>&1 \
    || { tail -30 "/tmp/jobstore-$kind-build.log"; exit 1; }
echo "built with -sanitize=$kind in $((SECONDS - started)) s"
started=$SECONDS
log=/tmp/jobstore-$kind-sanitizer.log
status=0
# A known, not yet understood hang (2026-11-28: once under AddressSanitizer, once in a
# PostgreSQL JobBench run): the process goes idle with every task suspended. Rather than let it
# eat CI's 90 minutes, a run over 15 minutes is stopped, the tests in flight are named, and the
# suite runs once more; a second hang fails.
# The same hang can also show inside one test, as a waitUntil's "(a hang)" while the rest of the
# suite goes on (2026-12-07: the PostgreSQL case of "every job runs exactly once" under
# ThreadSanitizer; 2.3 s without a sanitizer, and it passed in every other run): when every
# failure of a run is such a hang, the suite runs once more too, and a second failure fails.
for attempt in 1 2; do
    status=0
    timeout 900 swift test --sanitize="$kind" --scratch-path ".build-$kind-sanitizer" --skip-build > "$log" 2>&1 || status=$?
    issues=$(grep -a 'recorded an issue' "$log" || true)
    if [[ $status -ne 0 && $status -ne 124 && -n $issues ]] && ! grep -qv '(a hang)' <<< "$issues"; then
        echo "$kind sanitizer run $attempt: every failure is a hang inside a test:"
        grep -a 'recorded an issue' "$log" | head -5 | sed 's/^/  /'
        if [[ $attempt -eq 1 ]] && { [[ -z ${JOBSTORE_CI_DEADLINE:-} ]] || (($(date +%s) + 900 <= JOBSTORE_CI_DEADLINE)); }; then
            cp "$log" "$log.first"
            continue
        fi
        break
    fi
    [[ $status -ne 124 ]] && break
    echo "$kind sanitizer run $attempt hung (no end after 15 min); tests in flight:"
    comm -23 <(grep -a '◇ Test "' "$log" | sed 's/.*Test "\(.*\)" started.*/\1/' | sort -u) \
             <(grep -aE '[✔✘] Test "' "$log" | sed 's/.*Test "\([^"]*\)".*/\1/' | sort -u) | sed 's/^/  /'
    # In CI (.ci/run sets the deadline), a second run only if it fits before CI's budget ends.
    if [[ -n ${JOBSTORE_CI_DEADLINE:-} ]] && (($(date +%s) + 900 > JOBSTORE_CI_DEADLINE)); then
        echo "no time left in CI's budget for a second run"
        break
    fi
done
reports=$(grep -c "WARNING: ThreadSanitizer\|ERROR: AddressSanitizer\|ERROR: LeakSanitizer" "$log" || true)
grep -E "Test run with" "$log" | tail -1
# A failed test's own lines (its issues and where they were recorded), so CI's output says why.
# An issue's comment (what the test printed: the values behind it) is on the "↳" lines after it.
awk '/✘|recorded an issue|Expectation failed|Issue recorded/ { if ($0 !~ /Test run with/) { print; after = 1 }; next }
     after && /^↳/ { print; next } { after = 0 }' "$log" | cut -c1-2000 | head -60 || true
echo "$kind sanitizer: $reports report(s) in $((SECONDS - started)) s (log: $log)"
[[ $status -eq 0 && $reports -eq 0 ]]
