#!/usr/bin/env bash
# The main job: builds the `jobstore` tool and runs its demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-lmdb.sh
swift run jobstore demo "$@"
