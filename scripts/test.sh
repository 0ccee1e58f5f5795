#!/usr/bin/env bash
# The test suite: Swift Testing on the real LMDB, each test in its own temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-lmdb.sh
swift test "$@"
