#!/usr/bin/env python3
"""Flips one random bit of a store's data.mdb, N times (each on a fresh copy), and runs
`jobstore verify` on each copy: how many flips it reports, how many change what the store gives
back without verify seeing it (none since store format 4 seals every record with a CRC32C; 2.4 %
before), and whether any crashes or hangs it (issue 11, "a flipped byte").

    python3 scripts/flip-bytes.py N [JOBSTORE]    # JOBSTORE: the binary (default: a debug build)

The store is the demo's (jobs in every state, a pipeline, history events), 2,000 jobs.
"""
import collections
import os
import random
import shutil
import subprocess
import sys
import tempfile

count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
tool = sys.argv[2] if len(sys.argv) > 2 else ".build/debug/jobstore"
work = tempfile.mkdtemp(prefix="jobstore-flips-")
source = os.path.join(work, "source")
subprocess.run([tool, "demo", "--dir", source, "--jobs", "2000"], check=True, stdout=subprocess.DEVNULL)
size = os.path.getsize(os.path.join(source, "data.mdb"))
exported = subprocess.run([tool, "export", source], capture_output=True, check=True).stdout
page = 4096
random.seed(11)
outcomes = collections.Counter()
examples = {}
for n in range(count):
    copy = os.path.join(work, "copy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy)
    # Past the two meta pages (LMDB checks those and falls back to the other one).
    offset = random.randrange(2 * page, size)
    bit = random.randrange(8)
    with open(os.path.join(copy, "data.mdb"), "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))
    try:
        result = subprocess.run([tool, "verify", copy], capture_output=True, text=True, timeout=60)
        if result.returncode == 0:
            # Seen by nothing, or harmless? What the store gives back tells.
            again = subprocess.run([tool, "export", copy], capture_output=True, timeout=60)
            outcome = ("verify clean, export unchanged (unused bytes, or history events)"
                       if again.returncode == 0 and again.stdout == exported
                       else "verify clean, but a job reads differently (silent)")
        elif result.returncode == 1 and "problem" in (result.stdout + result.stderr).lower():
            outcome = "verify reports it (exit 1)"
        elif result.returncode in (1, 2):
            outcome = "a clear error (exit %d)" % result.returncode
        else:
            outcome = "CRASH (status %d)" % result.returncode
        detail = (result.stderr or result.stdout).strip().splitlines()
    except subprocess.TimeoutExpired:
        outcome, detail = "HANG (no end in 60 s)", []
    outcomes[outcome] += 1
    examples.setdefault(outcome, "offset %d (page %d) bit %d: %s" % (offset, offset // page, bit, detail[-1] if detail else ""))
shutil.rmtree(work)
print("%d single-bit flips in a %d-byte data.mdb (the demo's store, 2,000 jobs), one `jobstore verify` each:" % (count, size))
print()
print("| outcome | flips | an example |")
print("|---|---:|---|")
for outcome, n in outcomes.most_common():
    print("| %s | %d | %s |" % (outcome, n, examples[outcome][:160].replace("|", "/")))
