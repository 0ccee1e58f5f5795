-- The 1,000,000 jobs of scripts/gen-search-jobs.py, straight into a PostgreSQL job store (its schema made first,
-- e.g. `jobstore import postgres://…/db empty.jsonl --create`): psql -f scripts/load-search-jobs.sql postgres://…/db
\timing on
INSERT INTO jobstore_jobs (id, name, queue, state, priority, created_at, updated_at, run_at, attempts, max_attempts, errors, payload)
SELECT ('0190a5c4-1b2e-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
  (ARRAY['send-email','charge-card','resize-image','sync-crm','build-report','index-doc'])[i % 6 + 1],
  (ARRAY['mail','billing','media','crm'])[i % 4 + 1],
  CASE WHEN i % 100 < 90 THEN 3 WHEN i % 100 < 95 THEN 4 ELSE 1 END, 0,
  (extract(epoch from now()) * 1000000)::bigint - 604800000000 + i::bigint * 604800, (extract(epoch from now()) * 1000000)::bigint - 604800000000 + i::bigint * 604800 + 1000000, (extract(epoch from now()) * 1000000)::bigint - 604800000000 + i::bigint * 604800,
  CASE WHEN i % 100 >= 95 THEN 0 ELSE 1 END, CASE WHEN i % 100 BETWEEN 90 AND 94 THEN 1 ELSE 20 END,
  CASE WHEN i % 100 BETWEEN 90 AND 94 THEN jsonb_build_array(jsonb_build_object('message',
     (ARRAY['timeout after 30 s','connection refused (db-primary:5432)','card declined','rate limited by upstream (429)','invalid address: missing postcode','TLS handshake failed','out of memory','row lock timeout','upstream returned 502','payload too large','permission denied: bucket reports','schema mismatch in column 7'])[CASE WHEN i % 3 = 0 THEN 1 ELSE (i * 7) % 12 + 1 END],
     'attempt', 1, 'at', (extract(epoch from now()) * 1000000)::bigint - 604800000000 + i::bigint * 604800 + 1000000)) ELSE '[]'::jsonb END,
  convert_to(format('{"user": %s, "email": "user%s@example.com", "order": %s, "note": "standard delivery"}', i, i, (i::bigint * 7) % 1000003), 'UTF8')
FROM generate_series(0, 999999) i;
ANALYZE jobstore_jobs;
