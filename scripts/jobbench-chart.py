#!/usr/bin/env python3
"""JobBench lines as a chart: one SVG per durability, a group of bars per phase (ops/s, log
scale, the median over runs), a bar per store. Drawn by gnuplot (Debian's gnuplot-nox).

    scripts/jobbench-chart.py OUT_PREFIX results.jsonl [more.jsonl …]

writes OUT_PREFIX-full.svg and OUT_PREFIX-relaxed.svg (for the durabilities the lines have).
"""
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict

spec = importlib.util.spec_from_file_location("table", os.path.join(os.path.dirname(__file__), "jobbench-table.py"))
table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    prefix, files = sys.argv[1], sys.argv[2:]
    values = defaultdict(list)  # (durability, phase, store) -> ops/s
    stores, jobs = [], set()
    for row in table.read(files):
        if row["phase"] in ("size", "rss") or row["ops_per_s"] <= 0:
            continue
        if row["store"] not in stores:
            stores.append(row["store"])
        jobs.add(row.get("jobs"))
        values[(row.get("durability", "?"), row["phase"], row["store"])].append(row["ops_per_s"])
    for durability in ["full", "relaxed"]:
        phases = [p for p in table.PHASES if any((durability, p, s) in values for s in stores)]
        if not phases:
            continue
        with tempfile.TemporaryDirectory() as work:
            data = os.path.join(work, "data")
            with open(data, "w") as out:
                for phase in phases:
                    cells = [str(statistics.median(values[(durability, phase, s)])) if (durability, phase, s) in values else "NaN" for s in stores]
                    out.write(phase + " " + " ".join(cells) + "\n")
            svg = f"{prefix}-{durability}.svg"
            n = ", ".join(f"{j:,}" for j in sorted(j for j in jobs if j))
            plot = ", ".join(f"'{data}' using {i + 2} title '{store}'" for i, store in enumerate(stores))
            # Horizontal labels, broken at their hyphens (rotated text renders badly in some viewers).
            broken = [phase.replace("-", "\\n") for phase in phases]
            labels = ", ".join(f'"{label}" {at}' for at, label in enumerate(broken))
            script = f"""
set terminal svg size 1200,520 dynamic font 'sans,11' background '#ffffff'
set output '{svg}'
set title 'JobBench, {durability} durability, N = {n}: operations per second (median of the runs; log scale, higher is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set format y '%.0s%c'
set yrange [1:*]
set grid ytics
set key top right
set xtics nomirror ({labels})
set bmargin 5
plot {plot}
"""
            subprocess.run(["gnuplot"], input=script, text=True, check=True)
            print(svg)


if __name__ == "__main__":
    main()
