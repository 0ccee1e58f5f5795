#!/usr/bin/env bash
# Kills a process writing a mix of every kind of write (inserts, batches, claims, completions,
# retries, pipelines, cancels, prunes) ROUNDS times at random instants; after each kill the store
# is reopened, verify() must be clean and every acknowledged change present. Prints the figure.
#
#   scripts/crash-loop.sh [ROUNDS]     (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-200}
started=$SECONDS
JOBSTORE_CRASH_ROUNDS=$rounds ./scripts/test.sh --filter killedInMixedWrites 2>&1 | grep -E "mixed crash test|✘|passed|failed" 
echo "$rounds kills in $((SECONDS - started)) s"
