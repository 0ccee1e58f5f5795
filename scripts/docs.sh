#!/usr/bin/env bash
# Builds the DocC documentation of the public modules (swift-docc-plugin) and fails on any
# documentation warning — a broken symbol link included. The archives land in
# .build/plugins/Swift-DocC/outputs/<Module>.doccarchive; `--output-path DIR` (with
# `--transform-for-static-hosting`) makes a site instead.
set -euo pipefail
cd "$(dirname "$0")/.."
swift package --disable-sandbox generate-documentation --warnings-as-errors \
    --target JobCore --target JobStore --target JobScheduler --target JobStorePostgres --target JobStoreDashboard "$@"
