#!/usr/bin/env python3
"""N jobs as JSON lines for `jobstore import`: created over the last 7 days, 90 % succeeded, 5 % failed
(one of 12 error messages), 5 % pending, four queues, six names, a JSON payload of ~100 bytes.
The store of docs/BENCHMARKS.md "Search … at 1,000,000 jobs". Usage: gen-search-jobs.py N > jobs.jsonl"""
import base64, json, sys, time
n = int(sys.argv[1])
now = int(time.time() * 1e6)
span = 7 * 86400 * 10**6
step = span // n
errors = ["timeout after 30 s", "connection refused (db-primary:5432)", "card declined", "rate limited by upstream (429)",
          "invalid address: missing postcode", "TLS handshake failed", "out of memory", "row lock timeout",
          "upstream returned 502", "payload too large", "permission denied: bucket reports", "schema mismatch in column 7"]
names = ["send-email", "charge-card", "resize-image", "sync-crm", "build-report", "index-doc"]
out = sys.stdout
for i in range(n):
    created = now - span + i * step
    kind = i % 100
    state = "succeeded" if kind < 90 else "failed" if kind < 95 else "pending"
    payload = json.dumps({"user": i, "email": f"user{i}@example.com", "order": i * 7 % 1000003, "note": "standard delivery"}).encode()
    job = {"id": f"0190a5c4-1b2e-7{(i >> 48) & 0xfff:03x}-8{(i >> 36) & 0xfff:03x}-{i & 0xffffffffffff:012x}",
           "name": names[i % len(names)], "queue": ["mail", "billing", "media", "crm"][i % 4], "state": state, "priority": 0,
           "created_at": created, "updated_at": created + 1_000_000, "run_at": created, "attempts": 0 if state == "pending" else 1,
           "max_attempts": 1 if state == "failed" else 20,
           "errors": [{"message": errors[(i * 7) % len(errors) if i % 3 else 0], "attempt": 1, "at": created + 1_000_000}] if state == "failed" else [],
           "payload": base64.b64encode(payload).decode()}
    out.write(json.dumps(job) + "\n")
