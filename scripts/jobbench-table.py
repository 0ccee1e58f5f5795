#!/usr/bin/env python3
"""JobBench lines (one JSON object per phase, from `jobstore bench` and its peers) as Markdown
tables: one per durability, a row per phase, a column per store with the median over runs
(and the range when there were several), and the ratio of the first store to each other.

    scripts/jobbench-table.py results.jsonl [more.jsonl …]   (or lines on stdin)

Lines that are not JSON objects with `store`, `phase` and `ops_per_s` are ignored.
"""
import json
import statistics
import sys
from collections import defaultdict

PHASES = ["load", "insert-single", "insert-concurrent", "get", "get-cached", "pending-oldest", "pending-oldest-jobs",
          "count-by-state", "time-range", "scan-filter", "transition", "transition-batch", "claim",
          "claim-batch", "claim-concurrent", "size", "rss"]


def read(files):
    streams = [open(name) for name in files] if files else [sys.stdin]
    for stream in streams:
        for line in stream:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if {"store", "phase", "ops_per_s"} <= row.keys():
                yield row


def figure(row):
    """What a phase's cell shows: bytes for size and rss, otherwise ops/s."""
    if row["phase"] == "size":
        return row.get("bytes_per_job", 0)
    if row["phase"] == "rss":
        return row.get("bytes", 0) / 2**20
    return row["ops_per_s"]


def cell(values):
    median = statistics.median(values)
    text = f"{median:,.0f}" if median >= 100 else f"{median:,.1f}"
    if len(values) > 1:
        low, high = min(values), max(values)
        text += f" ({low:,.0f}–{high:,.0f})" if median >= 100 else f" ({low:,.1f}–{high:,.1f})"
    return text


def main():
    values = defaultdict(list)  # (durability, phase, store) -> figures
    stores = []
    jobs = set()
    for row in read(sys.argv[1:]):
        if row["store"] not in stores:
            stores.append(row["store"])
        jobs.add(row.get("jobs"))
        values[(row.get("durability", "?"), row["phase"], row["store"])].append(figure(row))
    for durability in ["full", "relaxed"]:
        phases = [p for p in PHASES if any((durability, p, s) in values for s in stores)]
        phases += sorted({p for (d, p, _) in values if d == durability and p not in PHASES})
        if not phases:
            continue
        first = stores[0]
        print(f"\n**{durability} durability**, N = {', '.join(f'{j:,}' for j in sorted(j for j in jobs if j))} "
              "(ops/s; size in bytes per job, rss in MiB; median of the runs, range in brackets)\n")
        header = ["phase"] + stores + [f"{first} / {s}" for s in stores[1:]]
        print("| " + " | ".join(header) + " |")
        print("|---|" + "---:|" * (len(header) - 1))
        for phase in phases:
            cells = [phase]
            medians = {}
            for store in stores:
                found = values.get((durability, phase, store))
                cells.append(cell(found) if found else "—")
                if found:
                    medians[store] = statistics.median(found)
            for store in stores[1:]:
                if first in medians and store in medians and medians[store]:
                    ratio = medians[first] / medians[store]
                    cells.append(f"{ratio:.2f} ×" if ratio < 10 else f"{ratio:.0f} ×")
                else:
                    cells.append("—")
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
