#!/usr/bin/env bash
# Installs Debian's LMDB development package (and its tools) when it is missing.
set -euo pipefail
if pkg-config --exists lmdb 2>/dev/null && command -v mdb_stat >/dev/null 2>&1; then
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "Installing liblmdb-dev and lmdb-utils…" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq liblmdb-dev lmdb-utils pkg-config >&2
