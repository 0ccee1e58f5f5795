#!/usr/bin/env python3
"""Checks the layer graph of docs/ARCHITECTURE.md against Package.swift: the core, the scheduler,
the PostgreSQL backend and the dashboard must not reach the LMDB layer (JobStore, LMDB, CLMDB)
through any chain of target dependencies, so each builds without liblmdb-dev; and no backend
reaches the other. Reads `swift package describe --type json` (no build). Exit 1 on a breach.

    python3 scripts/check-layers.py
"""
import json
import subprocess
import sys

LMDB_LAYER = {"JobStore", "LMDB", "CLMDB"}
# Each module, and what it must never depend on, directly or not.
RULES = {
    "JobCore": LMDB_LAYER | {"JobStorePostgres", "JobScheduler"},
    "JobScheduler": LMDB_LAYER | {"JobStorePostgres"},
    "JobStorePostgres": LMDB_LAYER | {"JobScheduler"},
    "JobStoreDashboard": LMDB_LAYER | {"JobStorePostgres"},
    "JobStoreText": LMDB_LAYER | {"JobStorePostgres"},
    "JobStore": {"JobStorePostgres", "JobScheduler"},
}

description = json.loads(subprocess.run(
    ["swift", "package", "describe", "--type", "json"], check=True, capture_output=True, text=True).stdout)
targets = {t["name"]: t.get("target_dependencies", []) for t in description["targets"]}


def closure(name, seen=None):
    """Every target `name` depends on, directly or through others, with one path to each."""
    seen = {} if seen is None else seen
    for dependency in targets.get(name, []):
        if dependency not in seen:
            seen[dependency] = name
            closure(dependency, seen)
    return seen


breaches = 0
for module, forbidden in RULES.items():
    if module not in targets:
        print(f"check-layers: no target {module} in Package.swift", file=sys.stderr)
        breaches += 1
        continue
    reached = closure(module)
    for bad in sorted(forbidden & reached.keys()):
        path, step = [bad], bad
        while step != module and step in reached:
            step = reached[step]
            path.append(step)
        print(f"check-layers: {module} reaches {bad}: {' -> '.join(reversed(path))}", file=sys.stderr)
        breaches += 1
    print(f"{module}: depends on {', '.join(sorted(reached)) or 'nothing'}")
if breaches:
    sys.exit(1)
print("the layer graph holds: the core, the scheduler, the PostgreSQL backend and the dashboard build without the LMDB layer")
