import Foundation
import JobCore
import PostgresNIO

/// The PostgreSQL schema of a job store: every table, index, trigger and migration — and, below
/// (``Statements``), every statement that reads and writes them — in this one file.
/// docs/POSTGRES.md explains each choice.
///
/// Times are `bigint` microseconds since 1970 (a ``JobCore/Timestamp``, exact, as the embedded
/// store keeps them); states are the `smallint` raw values of ``JobCore/JobState``
/// (0 waiting, 1 pending, 2 running, 3 succeeded, 4 failed, 5 cancelled).
enum Schema {
    /// The version this program writes: the number of migrations. A database migrated by a
    /// newer program is refused.
    static var version: Int64 { Int64(migrations.count) }

    /// The key of the advisory lock held (for the migrating transaction) while the schema is
    /// checked and migrated, so two processes starting at once do not race.
    static let migrationLock: Int64 = 0x6a6f_6273_746f_7265  // "jobstore"

    /// The table that records the schema version (created before anything else).
    static let meta = """
        CREATE TABLE IF NOT EXISTS jobstore_meta (
            key text PRIMARY KEY,
            value bigint NOT NULL
        )
        """

    /// The migrations, in order: `migrations[v - 1]` takes a database from version v − 1 to v.
    static let migrations: [[String]] = [version1, version2, version3, version4, version5, version6, version7, version8]

    /// Version 8: a schedule keeps its job (what "run now" enqueues), as the embedded store's
    /// schedule record version 2 does: `job_max_attempts` is NULL when none is kept (a row of
    /// an older version, until its scheduler registers it again); headers as a job's.
    static let version8: [String] = [
        """
        ALTER TABLE jobstore_schedules ADD COLUMN job_priority smallint, ADD COLUMN job_max_attempts integer,
            ADD COLUMN job_tenant text, ADD COLUMN job_unique_key text, ADD COLUMN job_payload bytea,
            ADD COLUMN job_timeout_us bigint, ADD COLUMN job_headers jsonb
        """
    ]

    /// Version 7: the finished jobs' index takes pipeline steps' jobs too, as the embedded
    /// store's `idx.finished` does: "the jobs that failed since" (the dashboard's common errors)
    /// reads it as a range; retention, which leaves steps to their pipelines, checks
    /// `pipeline_id` on the rows. And the schedulers' heartbeats, `jobstore_workers`.
    static let version7: [String] = [
        "DROP INDEX IF EXISTS jobstore_jobs_finished",
        "CREATE INDEX jobstore_jobs_finished ON jobstore_jobs (state, updated_at) WHERE state >= 3",
        // The schedulers' heartbeats (who runs what): one row per running scheduler, rewritten
        // every few seconds, deleted when it stops; `running` is a JSON array of
        // {"id", "queue", "name", "since"} and `queues` one of texts.
        """
        CREATE TABLE jobstore_workers (
            id uuid PRIMARY KEY,
            host text NOT NULL,
            pid integer NOT NULL,
            started_at bigint NOT NULL,
            beat_at bigint NOT NULL,
            interval_us bigint NOT NULL,
            concurrency integer NOT NULL,
            queues jsonb NOT NULL,
            running jsonb NOT NULL
        )
        """,
    ]

    /// Version 6: a job's own timeout (µs) and its headers (a JSON object of texts; NULL for
    /// none), and the progress handlers report, one row per job, apart from the job's row (a
    /// report rewrites a small row, not the job's), deleted with the job.
    static let version6: [String] = [
        "ALTER TABLE jobstore_jobs ADD COLUMN timeout_us bigint, ADD COLUMN headers jsonb",
        """
        CREATE TABLE jobstore_progress (
            job_id uuid PRIMARY KEY REFERENCES jobstore_jobs (id) ON DELETE CASCADE,
            attempt integer NOT NULL,
            fraction double precision NOT NULL,
            at bigint NOT NULL,
            message text
        )
        """,
        // The newest report, for the dashboard's change mark.
        "CREATE INDEX jobstore_progress_at ON jobstore_progress (at)",
    ]

    /// Version 5: pipelines per state, O(1) to read — counter rows kept by statement triggers in
    /// the same transaction as the pipeline rows, striped over 16 slots, as the jobs' are —
    /// filled from the pipelines there are.
    static let version5: [String] = [
        """
        CREATE TABLE jobstore_pipeline_counts (
            state smallint NOT NULL,
            slot smallint NOT NULL,
            n bigint NOT NULL,
            PRIMARY KEY (state, slot)
        )
        """,
        "INSERT INTO jobstore_pipeline_counts (state, slot, n) SELECT state, 0, count(*) FROM jobstore_pipelines GROUP BY state",
        """
        CREATE FUNCTION jobstore_pipelines_counted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO jobstore_pipeline_counts AS c (state, slot, n)
                SELECT state, pg_backend_pid() % 16, count(*) FROM new_rows GROUP BY state ORDER BY state
                ON CONFLICT (state, slot) DO UPDATE SET n = c.n + excluded.n;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO jobstore_pipeline_counts AS c (state, slot, n)
                SELECT state, pg_backend_pid() % 16, -count(*) FROM old_rows GROUP BY state ORDER BY state
                ON CONFLICT (state, slot) DO UPDATE SET n = c.n + excluded.n;
            ELSE
                INSERT INTO jobstore_pipeline_counts AS c (state, slot, n)
                SELECT state, pg_backend_pid() % 16, sum(d) FROM (
                    SELECT n.state, 1 AS d FROM new_rows n JOIN old_rows o USING (id) WHERE n.state <> o.state
                    UNION ALL
                    SELECT o.state, -1 FROM new_rows n JOIN old_rows o USING (id) WHERE n.state <> o.state) moved
                GROUP BY state HAVING sum(d) <> 0 ORDER BY state
                ON CONFLICT (state, slot) DO UPDATE SET n = c.n + excluded.n;
            END IF;
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE TRIGGER jobstore_pipelines_inserted AFTER INSERT ON jobstore_pipelines
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION jobstore_pipelines_counted()
        """,
        """
        CREATE TRIGGER jobstore_pipelines_updated AFTER UPDATE ON jobstore_pipelines
            REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION jobstore_pipelines_counted()
        """,
        """
        CREATE TRIGGER jobstore_pipelines_deleted AFTER DELETE ON jobstore_pipelines
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION jobstore_pipelines_counted()
        """,
    ]

    /// Version 4: the history. One row per event, written by the statement that makes the
    /// change (or just before the transaction commits), in the same transaction: its place is
    /// (xid, n) — the writing transaction's id and the event's number within it — and readers
    /// of the history take only events of transactions older than every running one
    /// (`pg_snapshot_xmin`), so a reader paging in (xid, n) order never passes over an event
    /// that commits later. A job's timeline is its newest events, on (job_id, xid, n).
    static let version4: [String] = [
        """
        CREATE TABLE jobstore_events (
            xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            n integer NOT NULL,
            job_id uuid NOT NULL,
            kind smallint NOT NULL,
            at bigint NOT NULL,
            state smallint NOT NULL,
            attempts integer NOT NULL,
            owner uuid,
            until bigint,
            message text,
            actor text,
            PRIMARY KEY (xid, n)
        )
        """,
        "CREATE INDEX jobstore_events_job ON jobstore_events (job_id, xid, n)",
        // `since` and pruning: events by time.
        "CREATE INDEX jobstore_events_at ON jobstore_events (at)",
    ]

    /// Version 2: queue control — a paused queue's pause time, a rate limit's token bucket (as
    /// the embedded store keeps them in its meta database). A claim reads its queue's row
    /// `FOR UPDATE`, so concurrent claims spend a bucket's tokens one after the other.
    static let version2: [String] = [
        """
        CREATE TABLE jobstore_queues (
            queue text PRIMARY KEY,
            paused_at bigint,
            rate_starts integer,
            rate_period bigint,
            rate_tokens double precision,
            rate_refilled_at bigint
        )
        """,
    ]

    /// Version 3: the ready index in the one claim order (``ClaimOrder``: priority, runAt, id),
    /// which the embedded store's `idx.ready` key has; version 1's ordered by creation time
    /// before the id.
    static let version3: [String] = [
        "DROP INDEX jobstore_jobs_ready",
        "CREATE INDEX jobstore_jobs_ready ON jobstore_jobs (queue, priority DESC, run_at, id) WHERE state = 1",
    ]

    /// Version 1: jobs, counters, pipelines, steps, schedules; the triggers that keep the
    /// counters and send the wake-ups.
    static let version1: [String] = [
        """
        CREATE TABLE jobstore_jobs (
            id uuid PRIMARY KEY,
            name text NOT NULL,
            queue text NOT NULL,
            tenant text,
            state smallint NOT NULL,
            priority smallint NOT NULL,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL,
            run_at bigint NOT NULL,
            attempts integer NOT NULL,
            max_attempts integer NOT NULL,
            lease_expires_at bigint,
            lease_owner uuid,
            errors jsonb NOT NULL DEFAULT '[]',
            unique_key text,
            pipeline_id uuid,
            pipeline_step integer,
            payload bytea NOT NULL,
            result bytea
        )
        """,
        // The claim: the ready jobs of a queue in claim order (version 3 drops created_at from it),
        // and nothing else — a partial index stays small however many jobs have finished.
        "CREATE INDEX jobstore_jobs_ready ON jobstore_jobs (queue, priority DESC, run_at, created_at, id) WHERE state = 1",
        // When a queue's next delayed job is due (the scheduler's sleep).
        "CREATE INDEX jobstore_jobs_due ON jobstore_jobs (queue, run_at) WHERE state = 1",
        // Listings by state and creation time (keyset paging), and by creation time alone.
        "CREATE INDEX jobstore_jobs_state_created ON jobstore_jobs (state, created_at, id)",
        "CREATE INDEX jobstore_jobs_created ON jobstore_jobs (created_at, id)",
        // Rescue: running jobs by lease expiry.
        "CREATE INDEX jobstore_jobs_leases ON jobstore_jobs (lease_expires_at) WHERE state = 2",
        // Retention: finished jobs by the time they finished (their last change).
        "CREATE INDEX jobstore_jobs_finished ON jobstore_jobs (state, updated_at) WHERE state >= 3 AND pipeline_id IS NULL",
        // Unique jobs: one live (unfinished) job per key.
        "CREATE UNIQUE INDEX jobstore_jobs_unique ON jobstore_jobs (unique_key) WHERE unique_key IS NOT NULL AND state < 3",
        // A pipeline's steps' jobs, to delete them with it.
        "CREATE INDEX jobstore_jobs_pipeline ON jobstore_jobs (pipeline_id) WHERE pipeline_id IS NOT NULL",
        // Counts per queue and state, O(1) to read: kept by the triggers below in the same
        // transaction as the rows. Striped over 16 slots (by server process) so that concurrent
        // transactions rarely wait on one counter row; a count is the sum of at most 16 rows.
        """
        CREATE TABLE jobstore_counts (
            queue text NOT NULL,
            state smallint NOT NULL,
            slot smallint NOT NULL,
            n bigint NOT NULL,
            PRIMARY KEY (queue, state, slot)
        )
        """,
        """
        CREATE TABLE jobstore_pipelines (
            id uuid PRIMARY KEY,
            name text NOT NULL,
            version bigint NOT NULL,
            fail_fast boolean NOT NULL,
            state smallint NOT NULL,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL,
            finished_at bigint,
            step_count integer NOT NULL,
            succeeded_steps integer NOT NULL,
            failed_steps integer NOT NULL,
            cancelled_steps integer NOT NULL
        )
        """,
        "CREATE INDEX jobstore_pipelines_state_created ON jobstore_pipelines (state, created_at, id)",
        "CREATE INDEX jobstore_pipelines_finished ON jobstore_pipelines (state, finished_at) WHERE finished_at IS NOT NULL",
        """
        CREATE TABLE jobstore_pipeline_steps (
            pipeline_id uuid NOT NULL REFERENCES jobstore_pipelines (id) ON DELETE CASCADE,
            step integer NOT NULL,
            name text NOT NULL,
            job_id uuid NOT NULL,
            dependents integer[] NOT NULL,
            remaining integer NOT NULL,
            PRIMARY KEY (pipeline_id, step)
        )
        """,
        """
        CREATE TABLE jobstore_schedules (
            name text PRIMARY KEY,
            timing text NOT NULL,
            time_zone text NOT NULL,
            queue text NOT NULL,
            job_name text NOT NULL,
            missed_ticks smallint NOT NULL,
            last_tick bigint,
            next_tick bigint,
            updated_at bigint NOT NULL
        )
        """,
        // The triggers: per statement, over its transition tables, so a claim of 100 jobs
        // changes each counter once, not 100 times. The rows are upserted in (queue, state)
        // order, so two transactions that share a slot lock its rows in the same order.
        """
        CREATE FUNCTION jobstore_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO jobstore_counts AS c (queue, state, slot, n)
            SELECT queue, state, pg_backend_pid() % 16, count(*) FROM new_rows
            GROUP BY queue, state ORDER BY queue, state
            ON CONFLICT (queue, state, slot) DO UPDATE SET n = c.n + excluded.n;
            IF EXISTS (SELECT 1 FROM new_rows WHERE state = 1) THEN
                PERFORM pg_notify('jobstore', 'work');
            END IF;
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE FUNCTION jobstore_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO jobstore_counts AS c (queue, state, slot, n)
            SELECT queue, state, pg_backend_pid() % 16, sum(d) FROM (
                SELECT n.queue, n.state, 1 AS d FROM new_rows n JOIN old_rows o USING (id)
                WHERE n.state <> o.state OR n.queue <> o.queue
                UNION ALL
                SELECT o.queue, o.state, -1 FROM new_rows n JOIN old_rows o USING (id)
                WHERE n.state <> o.state OR n.queue <> o.queue) moved
            GROUP BY queue, state HAVING sum(d) <> 0 ORDER BY queue, state
            ON CONFLICT (queue, state, slot) DO UPDATE SET n = c.n + excluded.n;
            IF EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o USING (id)
                       WHERE n.state = 1 AND (o.state <> 1 OR n.run_at <> o.run_at)) THEN
                PERFORM pg_notify('jobstore', 'work');
            END IF;
            PERFORM pg_notify('jobstore', 'cancel ' || n.id::text)
            FROM new_rows n JOIN old_rows o USING (id) WHERE o.state = 2 AND n.state = 5;
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE FUNCTION jobstore_jobs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO jobstore_counts AS c (queue, state, slot, n)
            SELECT queue, state, pg_backend_pid() % 16, -count(*) FROM old_rows
            GROUP BY queue, state ORDER BY queue, state
            ON CONFLICT (queue, state, slot) DO UPDATE SET n = c.n + excluded.n;
            PERFORM pg_notify('jobstore', 'cancel ' || id::text) FROM old_rows WHERE state = 2;
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE TRIGGER jobstore_jobs_inserted AFTER INSERT ON jobstore_jobs
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION jobstore_jobs_inserted()
        """,
        """
        CREATE TRIGGER jobstore_jobs_updated AFTER UPDATE ON jobstore_jobs
            REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION jobstore_jobs_updated()
        """,
        """
        CREATE TRIGGER jobstore_jobs_deleted AFTER DELETE ON jobstore_jobs
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION jobstore_jobs_deleted()
        """,
    ]
}

/// Every statement the PostgreSQL backend runs, built with bound parameters (never spliced
/// text, except the fixed column lists below).
enum Statements {
    /// The columns of a job row, in the order ``JobRow`` decodes them.
    static let jobColumns = """
        id, name, queue, tenant, state, priority, created_at, updated_at, run_at, attempts, max_attempts, \
        lease_expires_at, lease_owner, errors::text, unique_key, pipeline_id, pipeline_step, payload, result, timeout_us, \
        headers::text
        """

    /// ``jobColumns`` of the table named `j`.
    static let prefixedJobColumns = jobColumns.split(separator: ",").map { "j." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        .joined(separator: ", ")

    /// The columns of a pipeline row, in the order ``PipelineRow`` decodes them.
    static let pipelineColumns = """
        id, name, version, fail_fast, state, created_at, updated_at, finished_at, step_count, succeeded_steps, \
        failed_steps, cancelled_steps
        """

    // MARK: Schema

    static func lockMigrations() -> PostgresQuery { "SELECT pg_advisory_xact_lock(\(Schema.migrationLock))" }
    static func schemaVersion() -> PostgresQuery { "SELECT value FROM jobstore_meta WHERE key = 'schema_version'" }
    static func setSchemaVersion(_ version: Int64) -> PostgresQuery {
        """
        INSERT INTO jobstore_meta (key, value) VALUES ('schema_version', \(version))
        ON CONFLICT (key) DO UPDATE SET value = excluded.value
        """
    }

    // MARK: Jobs

    /// Inserts complete jobs in one statement: each column an array, unnested row by row.
    /// Absent values travel as placeholders beside a flag ('' for text, the nil UUID for ids,
    /// −1 for a step: none is a valid value) and become NULL.
    static func insert(_ jobs: [Job]) throws -> PostgresQuery {
        let none = UUID(high: 0, low: 0)
        return """
            INSERT INTO jobstore_jobs (id, name, queue, tenant, state, priority, created_at, updated_at, run_at, attempts,
                max_attempts, lease_expires_at, lease_owner, errors, unique_key, pipeline_id, pipeline_step, payload, result,
                timeout_us, headers)
            SELECT id, name, queue, NULLIF(tenant, ''), state, priority, created_at, updated_at, run_at, attempts, max_attempts,
                CASE WHEN leased THEN lease_expires_at END, CASE WHEN leased THEN lease_owner END, errors::jsonb,
                NULLIF(unique_key, ''), NULLIF(pipeline_id, \(none)), NULLIF(pipeline_step, -1), payload,
                CASE WHEN has_result THEN result END, NULLIF(timeout_us, 0), NULLIF(headers, '')::jsonb
            FROM unnest(\(jobs.map { UUID($0.id) }), \(jobs.map(\.name)), \(jobs.map(\.queue)), \(jobs.map { $0.tenant ?? "" }),
                \(jobs.map { Int16($0.state.rawValue) }), \(jobs.map { Int16($0.priority) }), \(jobs.map(\.createdAt.microseconds)),
                \(jobs.map(\.updatedAt.microseconds)), \(jobs.map(\.runAt.microseconds)), \(jobs.map { Int32($0.attempts) }),
                \(jobs.map { Int32($0.maxAttempts) }), \(jobs.map { $0.lease != nil }), \(jobs.map { $0.lease?.expiresAt.microseconds ?? 0 }),
                \(jobs.map { UUID($0.lease?.owner ?? OwnerToken(high: 0, low: 0)) }), \(try jobs.map { try JobRow.errorsJSON($0.errors) }),
                \(jobs.map { $0.uniqueKey ?? "" }), \(jobs.map { $0.pipeline.map { UUID($0.pipeline) } ?? none }),
                \(jobs.map { $0.pipeline.map { Int32($0.step) } ?? -1 }), \(jobs.map { ByteBuffer(bytes: $0.payload) }),
                \(jobs.map { $0.result != nil }), \(jobs.map { ByteBuffer(bytes: $0.result ?? []) }),
                \(jobs.map { $0.timeout?.wholeMicroseconds ?? 0 }), \(try jobs.map { try JobRow.headersJSON($0.headers) ?? "" }))
                AS t(id, name, queue, tenant, state, priority, created_at, updated_at, run_at, attempts, max_attempts, leased,
                     lease_expires_at, lease_owner, errors, unique_key, pipeline_id, pipeline_step, payload, has_result, result,
                     timeout_us, headers)
            """
    }

    /// Stores every field of a changed job but its id and creation time.
    static func update(_ job: Job) throws -> PostgresQuery {
        """
        UPDATE jobstore_jobs SET name = \(job.name), queue = \(job.queue), tenant = \(job.tenant),
            state = \(Int16(job.state.rawValue)), priority = \(Int16(job.priority)), updated_at = \(job.updatedAt.microseconds),
            run_at = \(job.runAt.microseconds), attempts = \(Int32(job.attempts)), max_attempts = \(Int32(job.maxAttempts)),
            lease_expires_at = \(job.lease?.expiresAt.microseconds), lease_owner = \(job.lease.map { UUID($0.owner) }),
            errors = \(try JobRow.errorsJSON(job.errors))::jsonb, unique_key = \(job.uniqueKey),
            payload = \(ByteBuffer(bytes: job.payload)), result = \(job.result.map { ByteBuffer(bytes: $0) }),
            timeout_us = \(job.timeout?.wholeMicroseconds), headers = \(try JobRow.headersJSON(job.headers))::jsonb
        WHERE id = \(UUID(job.id))
        """
    }

    /// Stores what a run's outcome or a move by hand changes — state, times, attempts, lease,
    /// errors, result — of many jobs in one statement (the finish of a batch). Absent leases and results travel as
    /// flags beside placeholder values.
    static func saveOutcomes(_ jobs: [Job]) throws -> PostgresQuery {
        """
        UPDATE jobstore_jobs j SET state = t.state, updated_at = t.updated_at, run_at = t.run_at, attempts = t.attempts,
            lease_expires_at = CASE WHEN t.leased THEN t.lease_expires_at END,
            lease_owner = CASE WHEN t.leased THEN t.lease_owner END,
            errors = t.errors::jsonb, result = CASE WHEN t.has_result THEN t.result END
        FROM unnest(\(jobs.map { UUID($0.id) }), \(jobs.map { Int16($0.state.rawValue) }), \(jobs.map(\.updatedAt.microseconds)),
                    \(jobs.map(\.runAt.microseconds)), \(jobs.map { Int32($0.attempts) }), \(jobs.map { $0.lease != nil }),
                    \(jobs.map { $0.lease?.expiresAt.microseconds ?? 0 }), \(jobs.map { UUID($0.lease?.owner ?? OwnerToken(high: 0, low: 0)) }),
                    \(try jobs.map { try JobRow.errorsJSON($0.errors) }), \(jobs.map { $0.result != nil }),
                    \(jobs.map { ByteBuffer(bytes: $0.result ?? []) }))
            AS t(id, state, updated_at, run_at, attempts, leased, lease_expires_at, lease_owner, errors, has_result, result)
        WHERE j.id = t.id
        """
    }

    static func job(_ id: JobID, locked: Bool) -> PostgresQuery {
        "SELECT \(unescaped: jobColumns) FROM jobstore_jobs WHERE id = \(UUID(id))\(unescaped: locked ? " FOR UPDATE" : "")"
    }

    /// Jobs by id, locked for the transaction, in id order (so concurrent transactions lock
    /// them in the same order).
    static func lockJobs(_ ids: [JobID]) -> PostgresQuery {
        "SELECT \(unescaped: jobColumns) FROM jobstore_jobs WHERE id = ANY(\(ids.map(UUID.init))) ORDER BY id FOR UPDATE"
    }

    static func delete(_ id: JobID) -> PostgresQuery { "DELETE FROM jobstore_jobs WHERE id = \(UUID(id))" }

    /// Deletes a pipeline (its steps go with it: ON DELETE CASCADE) and its steps' jobs.
    static func deletePipeline(_ id: PipelineID) -> PostgresQuery {
        """
        WITH jobs AS (DELETE FROM jobstore_jobs WHERE pipeline_id = \(UUID(id)))
        DELETE FROM jobstore_pipelines WHERE id = \(UUID(id))
        """
    }

    /// The live job holding a unique key.
    static func uniqueHolder(_ key: String) -> PostgresQuery {
        "SELECT \(unescaped: jobColumns) FROM jobstore_jobs WHERE unique_key = \(key) AND state < 3"
    }

    /// Claims up to `limit` ready jobs of `queue` in claim order (``ClaimOrder``): the candidates
    /// are locked with SKIP LOCKED, so concurrent claimers never wait on each other nor take the
    /// same job; one statement, on the partial index of ready jobs.
    static func claim(queue: String, limit: Int, now: Timestamp, expiry: Timestamp, owner: OwnerToken) -> PostgresQuery {
        """
        UPDATE jobstore_jobs j SET state = 2, attempts = j.attempts + 1, lease_expires_at = \(expiry.microseconds),
            lease_owner = \(UUID(owner)), updated_at = \(now.microseconds)
        FROM (SELECT id FROM jobstore_jobs
              WHERE state = 1 AND queue = \(queue) AND run_at <= \(now.microseconds)
              ORDER BY priority DESC, run_at, id
              LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED) picked
        WHERE j.id = picked.id
        RETURNING \(unescaped: prefixedJobColumns)
        """
    }

    /// Claims up to `limit` ready jobs from every queue in claim order, in one statement: each
    /// queue's best ready jobs are locked on the ready index (at most `limit` per queue, fewer
    /// for a queue capped in `caps` — 0 for a paused one, its whole tokens for a rate-limited
    /// one — skipping rows another transaction holds), merged, and the first `limit` claimed.
    /// The queues with pending jobs come from the counters, so the cost is O(queues · limit),
    /// never a sort of every ready job. The candidates not taken stay locked until the
    /// transaction ends (concurrent claimers pass over them, as over each other's).
    static func claimFromEveryQueue(limit: Int, caps: [(queue: String, cap: Int)], now: Timestamp, expiry: Timestamp, owner: OwnerToken) -> PostgresQuery {
        """
        UPDATE jobstore_jobs j SET state = 2, attempts = j.attempts + 1, lease_expires_at = \(expiry.microseconds),
            lease_owner = \(UUID(owner)), updated_at = \(now.microseconds)
        FROM (SELECT c.id FROM (SELECT queue FROM jobstore_counts WHERE state = 1 GROUP BY queue HAVING sum(n) > 0) q
              LEFT JOIN unnest(\(caps.map(\.queue)), \(caps.map { Int64($0.cap) })) AS caps(queue, cap) ON caps.queue = q.queue
              CROSS JOIN LATERAL (
                  SELECT id, priority, run_at FROM jobstore_jobs r
                  WHERE r.state = 1 AND r.queue = q.queue AND r.run_at <= \(now.microseconds)
                  ORDER BY priority DESC, run_at, id LIMIT least(\(Int64(limit)), coalesce(caps.cap, \(Int64(limit))))
                  FOR UPDATE SKIP LOCKED) c
              ORDER BY c.priority DESC, c.run_at, c.id LIMIT \(Int64(limit))) picked
        WHERE j.id = picked.id
        RETURNING \(unescaped: prefixedJobColumns)
        """
    }

    /// The earliest runAt of the queue's pending jobs whose time has not come.
    static func nextRunAt(queue: String, now: Timestamp) -> PostgresQuery {
        "SELECT min(run_at) FROM jobstore_jobs WHERE state = 1 AND queue = \(queue) AND run_at > \(now.microseconds)"
    }

    /// Running jobs whose lease expired before `now`, but those in `sparing`, locked (skipping
    /// those another rescuer holds).
    static func expiredLeases(before cutoff: Timestamp, limit: Int, sparing: Set<JobID>) -> PostgresQuery {
        """
        SELECT \(unescaped: jobColumns) FROM jobstore_jobs
        WHERE state = 2 AND lease_expires_at < \(cutoff.microseconds) AND NOT (id = ANY(\(sparing.map(UUID.init))))
        ORDER BY lease_expires_at LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED
        """
    }

    // MARK: Counts and listings

    static func count(_ state: JobState) -> PostgresQuery {
        "SELECT coalesce(sum(n), 0)::bigint FROM jobstore_counts WHERE state = \(Int16(state.rawValue))"
    }

    static func counts() -> PostgresQuery { "SELECT state, sum(n)::bigint FROM jobstore_counts GROUP BY state" }

    static func queueCounts() -> PostgresQuery {
        "SELECT queue, state, sum(n)::bigint FROM jobstore_counts GROUP BY queue, state HAVING sum(n) <> 0"
    }

    /// The jobs matching `filter` after `after`, by (created_at, id), one more than `limit` (to
    /// tell whether another page follows). Unset fields are NULL parameters, which the planner
    /// folds away (an unnamed statement is planned with its values), so a state uses the
    /// (state, created_at, id) index and no state the (created_at, id) one.
    static func jobs(matching filter: JobFilter, newestFirst: Bool, limit: Int, after: PageCursor?) -> PostgresQuery {
        let order = newestFirst ? "DESC" : "ASC"
        var sql = PostgresQuery.StringInterpolation(literalCapacity: 1500, interpolationCount: 20)
        guard let budget = filter.examineAtMost else {
            sql.appendLiteral("SELECT \(jobColumns) FROM jobstore_jobs WHERE ")
            appendRange(&sql, filter, after: after, newestFirst: newestFirst)
            appendChecks(&sql, filter)
            sql.appendLiteral(" ORDER BY created_at \(order), id \(order) LIMIT \(Int64(limit) + 1)")
            return PostgresQuery(stringInterpolation: sql)
        }
        // At most `budget` rows of the range, numbered in order; the first limit + 1 of them that
        // pass the checks, each with its number (how far the page looked). Not materialized: the
        // scan stops at the (limit + 1)th match.
        sql.appendLiteral("""
            SELECT \(prefixedJobColumns), j.n FROM (
                SELECT r.*, row_number() OVER (ORDER BY r.created_at \(order), r.id \(order)) AS n
                FROM (SELECT * FROM jobstore_jobs WHERE\u{20}
            """)
        appendRange(&sql, filter, after: after, newestFirst: newestFirst)
        sql.appendLiteral(" ORDER BY created_at \(order), id \(order) LIMIT \(Int64(budget))) r\n) j WHERE true")
        appendChecks(&sql, filter)
        // Ordered as the window is (not by n): the planner then knows the rows come sorted and
        // stops at the limit; ORDER BY n put a sort of the whole bound under it (33 ms, not 1.6).
        sql.appendLiteral(" ORDER BY j.created_at \(order), j.id \(order) LIMIT \(Int64(limit) + 1)")
        return PostgresQuery(stringInterpolation: sql)
    }

    /// How many rows of `filter`'s range after `after` a bounded page looks at (at most its
    /// bound), and — when it reaches the bound — the last one's position: where a page that
    /// found too few to fill goes on. Two index-only scans of the range's index, the second
    /// skipping to the bound's row (no sort: an aggregate over the ordered rows sorted 20,000
    /// of them twice, 14 ms).
    static func examinedRange(_ filter: JobFilter, newestFirst: Bool, after: PageCursor?, budget: Int) -> PostgresQuery {
        let order = newestFirst ? "DESC" : "ASC"
        var sql = PostgresQuery.StringInterpolation(literalCapacity: 700, interpolationCount: 20)
        sql.appendLiteral("SELECT (SELECT count(*) FROM (SELECT 1 FROM jobstore_jobs WHERE ")
        appendRange(&sql, filter, after: after, newestFirst: newestFirst)
        sql.appendLiteral(" ORDER BY created_at \(order), id \(order) LIMIT \(Int64(budget))) r), l.created_at, l.id FROM (SELECT 1) one ")
        sql.appendLiteral("LEFT JOIN LATERAL (SELECT created_at, id FROM jobstore_jobs WHERE ")
        appendRange(&sql, filter, after: after, newestFirst: newestFirst)
        sql.appendLiteral(" ORDER BY created_at \(order), id \(order) OFFSET \(Int64(budget) - 1) LIMIT 1) l ON true")
        return PostgresQuery(stringInterpolation: sql)
    }

    /// The index range of a listing: a state's range of (state, created_at, id), or
    /// (created_at, id), after the cursor.
    private static func appendRange(_ sql: inout PostgresQuery.StringInterpolation, _ filter: JobFilter, after: PageCursor?, newestFirst: Bool) {
        let state = filter.state.map { Int16($0.rawValue) }
        sql.appendLiteral("("); sql.appendInterpolation(state); sql.appendLiteral("::smallint IS NULL OR state = "); sql.appendInterpolation(state)
        sql.appendLiteral(") AND ("); sql.appendInterpolation(filter.createdFrom?.microseconds)
        sql.appendLiteral("::bigint IS NULL OR created_at >= "); sql.appendInterpolation(filter.createdFrom?.microseconds)
        sql.appendLiteral(") AND ("); sql.appendInterpolation(filter.createdUntil?.microseconds)
        sql.appendLiteral("::bigint IS NULL OR created_at < "); sql.appendInterpolation(filter.createdUntil?.microseconds)
        sql.appendLiteral(") AND ("); sql.appendInterpolation(after?.createdAt.microseconds)
        sql.appendLiteral("::bigint IS NULL OR (created_at, id) \(newestFirst ? "<" : ">") (")
        sql.appendInterpolation(after?.createdAt.microseconds); sql.appendLiteral(", "); sql.appendInterpolation(after.map { UUID($0.id) })
        sql.appendLiteral("))")
    }

    /// The checks on each job of the range (each `AND …`; a NULL parameter passes).
    private static func appendChecks(_ sql: inout PostgresQuery.StringInterpolation, _ filter: JobFilter) {
        let payload = filter.payloadContains.map { ByteBuffer(string: $0) }
        sql.appendLiteral(" AND ("); sql.appendInterpolation(filter.queue); sql.appendLiteral("::text IS NULL OR queue = "); sql.appendInterpolation(filter.queue)
        sql.appendLiteral(") AND ("); sql.appendInterpolation(filter.tenant); sql.appendLiteral("::text IS NULL OR tenant = "); sql.appendInterpolation(filter.tenant)
        sql.appendLiteral(") AND ("); sql.appendInterpolation(filter.name); sql.appendLiteral("::text IS NULL OR name = "); sql.appendInterpolation(filter.name)
        sql.appendLiteral(") AND ("); sql.appendInterpolation(payload); sql.appendLiteral("::bytea IS NULL OR position(")
        sql.appendInterpolation(payload); sql.appendLiteral("::bytea IN payload) > 0")
        sql.appendLiteral(") AND ("); sql.appendInterpolation(filter.errorContains)
        sql.appendLiteral("::text IS NULL OR EXISTS (SELECT 1 FROM jsonb_array_elements(errors) e WHERE strpos(e->>'message', ")
        sql.appendInterpolation(filter.errorContains); sql.appendLiteral(") > 0))")
    }

    /// The newest `budget` jobs that failed for good since `since` (by their finish time, the
    /// `updated_at` of a failed job), each with its last error message; one more row than
    /// `budget` says there were more.
    static func recentFailures(since: Timestamp, budget: Int) -> PostgresQuery {
        """
        SELECT id, updated_at, errors->(jsonb_array_length(errors) - 1)->>'message' FROM jobstore_jobs
        WHERE state = \(Int16(JobState.failed.rawValue)) AND updated_at >= \(since.microseconds)
        ORDER BY updated_at DESC LIMIT \(Int64(budget) + 1)
        """
    }

    /// The pipelines in `state` by (created_at, id), or of every state by id (creation order),
    /// after `after`; one more than `limit`.
    static func pipelines(in state: PipelineState?, newestFirst: Bool, limit: Int, after: PipelineCursor?) -> PostgresQuery {
        let (order, beyond) = newestFirst ? ("DESC", "<") : ("ASC", ">")
        guard let state else {
            return """
                SELECT \(unescaped: pipelineColumns) FROM jobstore_pipelines
                WHERE (\(after.map { UUID($0.id) })::uuid IS NULL OR id \(unescaped: beyond) \(after.map { UUID($0.id) }))
                ORDER BY id \(unescaped: order) LIMIT \(Int64(limit) + 1)
                """
        }
        return """
            SELECT \(unescaped: pipelineColumns) FROM jobstore_pipelines
            WHERE state = \(Int16(state.rawValue))
              AND (\(after?.createdAt.microseconds)::bigint IS NULL
                   OR (created_at, id) \(unescaped: beyond) (\(after?.createdAt.microseconds), \(after.map { UUID($0.id) })))
            ORDER BY created_at \(unescaped: order), id \(unescaped: order) LIMIT \(Int64(limit) + 1)
            """
    }

    /// Pipelines per state: the counter rows (schema version 5), O(1).
    static func pipelineCounts() -> PostgresQuery {
        "SELECT state, sum(n)::bigint FROM jobstore_pipeline_counts GROUP BY state"
    }

    /// The pipeline states whose counter rows disagree with a count of the pipelines: state,
    /// kept, counted.
    static func wrongPipelineCounters() -> PostgresQuery {
        """
        WITH kept AS (SELECT state, sum(n)::bigint AS n FROM jobstore_pipeline_counts GROUP BY state),
             counted AS (SELECT state, count(*)::bigint AS n FROM jobstore_pipelines GROUP BY state)
        SELECT state, coalesce(kept.n, 0), coalesce(counted.n, 0)
        FROM kept FULL JOIN counted USING (state)
        WHERE coalesce(kept.n, 0) <> coalesce(counted.n, 0)
        ORDER BY state
        """
    }

    /// Every queue's control row (unlocked, for reading).
    static func queueControlsRead() -> PostgresQuery {
        "SELECT queue, \(unescaped: queueColumns) FROM jobstore_queues ORDER BY queue"
    }

    /// Per queue of `queues`, the earliest runAt not after `now` of its pending jobs: one seek
    /// each on the (queue, run_at) index of ready jobs.
    static func oldestReady(_ queues: [String], now: Timestamp) -> PostgresQuery {
        """
        SELECT q, (SELECT min(run_at) FROM jobstore_jobs WHERE state = 1 AND queue = q AND run_at <= \(now.microseconds))
        FROM unnest(\(queues)::text[]) AS q
        """
    }

    /// Every registered schedule, by name.
    static func schedules() -> PostgresQuery {
        "SELECT \(unescaped: scheduleSelection) FROM jobstore_schedules ORDER BY name"
    }

    static func jobs(createdFrom start: Timestamp, until end: Timestamp, limit: Int) -> PostgresQuery {
        """
        SELECT \(unescaped: jobColumns) FROM jobstore_jobs
        WHERE created_at >= \(start.microseconds) AND created_at < \(end.microseconds)
        ORDER BY created_at, id LIMIT \(Int64(limit))
        """
    }

    static func jobIDs(createdFrom start: Timestamp, until end: Timestamp, limit: Int) -> PostgresQuery {
        """
        SELECT id FROM jobstore_jobs
        WHERE created_at >= \(start.microseconds) AND created_at < \(end.microseconds)
        ORDER BY created_at, id LIMIT \(Int64(limit))
        """
    }

    /// Running jobs whose lease expired before `now`, on the partial index of leases.
    // MARK: Progress

    /// Stores progress reports (one per job), each over the job's last; those of jobs that are
    /// gone are dropped.
    static func storeProgress(_ reports: [ProgressReport]) -> PostgresQuery {
        """
        INSERT INTO jobstore_progress (job_id, attempt, fraction, at, message)
        SELECT t.id, t.attempt, t.fraction, t.at, NULLIF(t.message, '')
        FROM unnest(\(reports.map { UUID($0.id) }), \(reports.map { Int32($0.progress.attempt) }), \(reports.map(\.progress.fraction)),
                    \(reports.map(\.progress.at.microseconds)), \(reports.map { $0.progress.message ?? "" }))
            AS t(id, attempt, fraction, at, message)
        WHERE EXISTS (SELECT 1 FROM jobstore_jobs j WHERE j.id = t.id)
        ON CONFLICT (job_id) DO UPDATE SET attempt = excluded.attempt, fraction = excluded.fraction, at = excluded.at,
            message = excluded.message
        """
    }

    /// Deletes the heartbeats of schedulers whose last beat came before `cutoff`.
    static func forgetWorkers(before cutoff: Timestamp) -> PostgresQuery {
        "DELETE FROM jobstore_workers WHERE beat_at < \(cutoff.microseconds)"
    }

    /// Writes a scheduler's heartbeat over its last.
    static func recordWorker(_ worker: WorkerRecord, queues: String, running: String) -> PostgresQuery {
        """
        INSERT INTO jobstore_workers (id, host, pid, started_at, beat_at, interval_us, concurrency, queues, running)
        VALUES (\(UUID(JobID(high: worker.id.high, low: worker.id.low))), \(worker.host), \(worker.pid), \(worker.startedAt.microseconds),
                \(worker.beatAt.microseconds), \(worker.interval.wholeMicroseconds), \(Int32(worker.concurrency)), \(queues)::jsonb, \(running)::jsonb)
        ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, started_at = excluded.started_at, beat_at = excluded.beat_at,
            interval_us = excluded.interval_us, concurrency = excluded.concurrency, queues = excluded.queues, running = excluded.running
        """
    }

    static func removeWorker(_ id: OwnerToken) -> PostgresQuery {
        "DELETE FROM jobstore_workers WHERE id = \(UUID(JobID(high: id.high, low: id.low)))"
    }

    static func workers() -> PostgresQuery {
        """
        SELECT id, host, pid, started_at, beat_at, interval_us, concurrency, queues::text, running::text
        FROM jobstore_workers ORDER BY started_at, id
        """
    }

    static func progress(_ id: JobID) -> PostgresQuery {
        "SELECT attempt, fraction, at, message FROM jobstore_progress WHERE job_id = \(UUID(id))"
    }

    /// The time of the newest progress report (0 for none): the backward end of an index.
    static func lastProgress() -> PostgresQuery { "SELECT coalesce(max(at), 0)::bigint FROM jobstore_progress" }

    static func expiredLeaseCount(now: Timestamp) -> PostgresQuery {
        "SELECT count(*)::bigint FROM jobstore_jobs WHERE state = 2 AND lease_expires_at < \(now.microseconds)"
    }

    /// The (queue, state) pairs whose counter rows disagree with a count of the jobs: queue,
    /// state, kept, counted.
    static func wrongCounters() -> PostgresQuery {
        """
        WITH kept AS (SELECT queue, state, sum(n)::bigint AS n FROM jobstore_counts GROUP BY queue, state),
             counted AS (SELECT queue, state, count(*)::bigint AS n FROM jobstore_jobs GROUP BY queue, state)
        SELECT queue, state, coalesce(kept.n, 0), coalesce(counted.n, 0)
        FROM kept FULL JOIN counted USING (queue, state)
        WHERE coalesce(kept.n, 0) <> coalesce(counted.n, 0)
        ORDER BY queue, state
        """
    }

    /// The pipelines whose step counts disagree with their steps' rows and jobs: id, then
    /// (kept, counted) for steps, succeeded, failed, cancelled.
    static func wrongPipelines() -> PostgresQuery {
        """
        SELECT p.id, p.step_count, (SELECT count(*) FROM jobstore_pipeline_steps s WHERE s.pipeline_id = p.id)::integer,
            p.succeeded_steps, (count(j.id) FILTER (WHERE j.state = 3))::integer,
            p.failed_steps, (count(j.id) FILTER (WHERE j.state = 4))::integer,
            p.cancelled_steps, (count(j.id) FILTER (WHERE j.state = 5))::integer
        FROM jobstore_pipelines p LEFT JOIN jobstore_jobs j ON j.pipeline_id = p.id
        GROUP BY p.id
        HAVING p.step_count <> (SELECT count(*) FROM jobstore_pipeline_steps s WHERE s.pipeline_id = p.id)
            OR p.succeeded_steps <> count(j.id) FILTER (WHERE j.state = 3)
            OR p.failed_steps <> count(j.id) FILTER (WHERE j.state = 4)
            OR p.cancelled_steps <> count(j.id) FILTER (WHERE j.state = 5)
        ORDER BY p.id
        """
    }

    /// The steps whose job is gone: pipeline, step, job.
    static func stepsWithoutJobs() -> PostgresQuery {
        """
        SELECT s.pipeline_id, s.step, s.job_id FROM jobstore_pipeline_steps s
        LEFT JOIN jobstore_jobs j ON j.id = s.job_id WHERE j.id IS NULL ORDER BY s.pipeline_id, s.step
        """
    }

    /// The jobs per state counted row by row (a full scan: what the counters must equal).
    static func recount() -> PostgresQuery { "SELECT state, count(*)::bigint FROM jobstore_jobs GROUP BY state" }

    /// The bytes on disk of the store's tables with their indexes and TOAST.
    static func storageBytes() -> PostgresQuery {
        "SELECT coalesce(sum(pg_total_relation_size(oid)), 0)::bigint FROM pg_class WHERE relkind = 'r' AND relname LIKE 'jobstore\\_%'"
    }

    // MARK: Retention

    /// Deletes up to `limit` jobs (not pipeline steps) in a finished state that finished before
    /// `cutoff`, on the partial index of finished jobs; returns them (for their `pruned` events).
    static func pruneJobs(_ state: JobState, _ selection: PruneSelection, limit: Int) -> PostgresQuery {
        let column = selection.jobColumn
        return """
        DELETE FROM jobstore_jobs WHERE id IN (
            SELECT id FROM jobstore_jobs
            WHERE state = \(Int16(state.rawValue)) AND pipeline_id IS NULL AND \(unescaped: column) < \(selection.cutoff.microseconds)
            ORDER BY \(unescaped: column) LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED)
        RETURNING \(unescaped: jobColumns)
        """
    }

    /// Deletes up to `limit` pipelines in a finished state that `selection` picks, with
    /// their steps' jobs (the steps go with the pipeline: ON DELETE CASCADE); returns the jobs.
    static func prunePipelines(_ state: PipelineState, _ selection: PruneSelection, limit: Int) -> PostgresQuery {
        let column = selection.pipelineColumn
        return """
        WITH gone AS (
            DELETE FROM jobstore_pipelines WHERE id IN (
                SELECT id FROM jobstore_pipelines
                WHERE state = \(Int16(state.rawValue)) AND \(unescaped: column) < \(selection.cutoff.microseconds)
                ORDER BY \(unescaped: column) LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED)
            RETURNING id)
        DELETE FROM jobstore_jobs WHERE pipeline_id IN (SELECT id FROM gone)
        RETURNING \(unescaped: jobColumns)
        """
    }

    /// How many jobs (not pipeline steps) and pipelines a prune would delete: one row.
    static func countPrunable(_ state: JobState, _ pipelineState: PipelineState?, _ selection: PruneSelection) -> PostgresQuery {
        let cutoff = selection.cutoff.microseconds
        return """
        SELECT
            (SELECT count(*) FROM jobstore_jobs
             WHERE state = \(Int16(state.rawValue)) AND pipeline_id IS NULL AND \(unescaped: selection.jobColumn) < \(cutoff))::bigint,
            (SELECT count(*) FROM jobstore_pipelines
             WHERE state = \(Int16(pipelineState?.rawValue ?? 255)) AND \(unescaped: selection.pipelineColumn) < \(cutoff))::bigint
        """
    }

    // MARK: Pipelines

    static func insert(_ pipeline: Pipeline) -> PostgresQuery {
        """
        INSERT INTO jobstore_pipelines (\(unescaped: pipelineColumns)) VALUES (
            \(UUID(pipeline.id)), \(pipeline.name), \(Int64(pipeline.version)), \(pipeline.failFast), \(Int16(pipeline.state.rawValue)),
            \(pipeline.createdAt.microseconds), \(pipeline.updatedAt.microseconds), \(pipeline.finishedAt?.microseconds),
            \(Int32(pipeline.stepCount)), \(Int32(pipeline.succeededSteps)), \(Int32(pipeline.failedSteps)), \(Int32(pipeline.cancelledSteps)))
        """
    }

    static func update(_ pipeline: Pipeline) -> PostgresQuery {
        """
        UPDATE jobstore_pipelines SET state = \(Int16(pipeline.state.rawValue)), updated_at = \(pipeline.updatedAt.microseconds),
            finished_at = \(pipeline.finishedAt?.microseconds), succeeded_steps = \(Int32(pipeline.succeededSteps)),
            failed_steps = \(Int32(pipeline.failedSteps)), cancelled_steps = \(Int32(pipeline.cancelledSteps))
        WHERE id = \(UUID(pipeline.id))
        """
    }

    static func pipeline(_ id: PipelineID, locked: Bool) -> PostgresQuery {
        "SELECT \(unescaped: pipelineColumns) FROM jobstore_pipelines WHERE id = \(UUID(id))\(unescaped: locked ? " FOR UPDATE" : "")"
    }

    static func insert(_ steps: [PipelineStepRecord], of pipeline: PipelineID) -> PostgresQuery {
        // Each step's dependents travel as one text ("{1,2}"): arrays of arrays must be rectangular.
        """
        INSERT INTO jobstore_pipeline_steps (pipeline_id, step, name, job_id, dependents, remaining)
        SELECT \(UUID(pipeline)), step, name, job_id, dependents::integer[], remaining
        FROM unnest(\(steps.map { Int32($0.index) }), \(steps.map(\.name)), \(steps.map { UUID($0.jobID) }),
                    \(steps.map { "{" + $0.dependents.map(String.init).joined(separator: ",") + "}" }),
                    \(steps.map { Int32($0.remainingDependencies) }))
            AS t(step, name, job_id, dependents, remaining)
        """
    }

    /// The columns of a step row, in the order ``StepRow`` decodes them.
    static let stepColumns = "step, name, job_id, dependents, remaining"

    static func step(_ pipeline: PipelineID, _ index: Int) -> PostgresQuery {
        "SELECT \(unescaped: stepColumns) FROM jobstore_pipeline_steps WHERE pipeline_id = \(UUID(pipeline)) AND step = \(Int32(index)) FOR UPDATE"
    }

    static func steps(_ pipeline: PipelineID) -> PostgresQuery {
        "SELECT \(unescaped: stepColumns) FROM jobstore_pipeline_steps WHERE pipeline_id = \(UUID(pipeline)) ORDER BY step"
    }

    /// The jobs of a pipeline's steps, unlocked (for reading).
    static func stepJobsForReading(_ pipeline: PipelineID) -> PostgresQuery {
        "SELECT \(unescaped: jobColumns) FROM jobstore_jobs WHERE pipeline_id = \(UUID(pipeline))"
    }

    static func setRemaining(_ pipeline: PipelineID, _ index: Int, _ remaining: Int) -> PostgresQuery {
        "UPDATE jobstore_pipeline_steps SET remaining = \(Int32(remaining)) WHERE pipeline_id = \(UUID(pipeline)) AND step = \(Int32(index))"
    }

    /// The jobs of a pipeline's steps, locked, in id order.
    static func stepJobs(_ pipeline: PipelineID) -> PostgresQuery {
        "SELECT \(unescaped: jobColumns) FROM jobstore_jobs WHERE pipeline_id = \(UUID(pipeline)) ORDER BY id FOR UPDATE"
    }

    // MARK: History

    /// The columns of an event row, in the order ``EventRow`` decodes them.
    static let eventColumns = "xid::text::bigint, n, job_id, kind, at, state, attempts, owner, until, message, actor"

    /// `query` carrying `events`: a data-modifying CTE in front of it inserts them in the same
    /// statement (one round trip for a change and its events). Absent values travel as
    /// placeholders beside a flag, as in ``insert(_:)-([Job])``.
    static func carrying(_ events: [RecordedEvent], _ query: PostgresQuery) -> PostgresQuery {
        guard !events.isEmpty else { return query }
        var query = query
        let first = query.binds.count + 1
        let nobody = UUID(high: 0, low: 0)
        query.binds.append(events.map(\.number))
        query.binds.append(events.map { UUID($0.jobID) })
        query.binds.append(events.map { Int16($0.event.kind.rawValue) })
        query.binds.append(events.map(\.event.at.microseconds))
        query.binds.append(events.map { Int16($0.event.state.rawValue) })
        query.binds.append(events.map { Int32($0.event.attempts) })
        query.binds.append(events.map { $0.event.owner.map(UUID.init) ?? nobody })
        query.binds.append(events.map { $0.event.until != nil })
        query.binds.append(events.map { $0.event.until?.microseconds ?? 0 })
        query.binds.append(events.map { $0.event.message != nil })
        query.binds.append(events.map { $0.event.message ?? "" })
        query.binds.append(events.map { $0.event.actor ?? "" })
        let parameters = (first..<first + 12).map { "$\($0)" }.joined(separator: ", ")
        let recorded = """
            jobstore_recorded AS (
                INSERT INTO jobstore_events (n, job_id, kind, at, state, attempts, owner, until, message, actor)
                SELECT n, job_id, kind, at, state, attempts, NULLIF(owner, '\(nobody.uuidString)'::uuid),
                    CASE WHEN has_until THEN until END, CASE WHEN has_message THEN message END, NULLIF(actor, '')
                FROM unnest(\(parameters))
                    AS e(n, job_id, kind, at, state, attempts, owner, has_until, until, has_message, message, actor))
            """
        query.sql = query.sql.hasPrefix("WITH ") ? "WITH \(recorded),\n" + query.sql.dropFirst(5) : "WITH \(recorded)\n" + query.sql
        return query
    }

    /// `claim`, a claim statement (``claim(queue:limit:now:expiry:owner:)``), recording a
    /// `claimed` event for each job it claims in the same statement, numbered from `first` in
    /// the transaction: the event ``JobCore/JobEvent/recording(_:_:at:actor:)`` gives a claim
    /// (its lease's owner and expiry), built from the claimed rows — no round trip more.
    static func recordingClaims(_ claim: PostgresQuery, first: Int32, actor: String?) -> PostgresQuery {
        var query = claim
        let number = query.binds.count + 1
        query.binds.append(first)
        query.binds.append(Int16(JobEvent.Kind.claimed.rawValue))
        query.binds.append(actor ?? "")
        query.sql = """
            WITH jobstore_claimed AS (\(claim.sql)),
            jobstore_claims AS (
                INSERT INTO jobstore_events (n, job_id, kind, at, state, attempts, owner, until, actor)
                SELECT $\(number)::integer + (row_number() OVER ())::integer - 1, id, $\(number + 1)::smallint, updated_at, state,
                    attempts, lease_owner, lease_expires_at, NULLIF($\(number + 2)::text, '')
                FROM jobstore_claimed)
            SELECT \(jobColumns) FROM jobstore_claimed
            """
        return query
    }

    /// Only events of transactions older than every running one: no transaction still running
    /// can add an event before them in (xid, n) order.
    static let settled = "xid < pg_snapshot_xmin(pg_current_snapshot())"

    /// A job's newest `limit` events, newest first, each with how many the job has in all; none
    /// when the job is gone (its timeline went with it, as in the embedded store).
    static func timeline(_ id: JobID, limit: Int) -> PostgresQuery {
        """
        SELECT \(unescaped: eventColumns), count(*) OVER ()::bigint FROM jobstore_events
        WHERE job_id = \(UUID(id)) AND EXISTS (SELECT 1 FROM jobstore_jobs WHERE id = \(UUID(id)))
        ORDER BY xid DESC, n DESC LIMIT \(Int64(limit))
        """
    }

    /// A page of the history in (xid, n) order, one more than `limit`: after position `after`,
    /// or from the first event at or after `since`, or from the oldest kept; settled events only.
    static func history(after: HistoryPosition?, since: Timestamp?, limit: Int) -> PostgresQuery {
        """
        SELECT \(unescaped: eventColumns) FROM jobstore_events
        WHERE (\(after?.time.microseconds)::bigint IS NULL
               OR (xid, n) > (\(after?.time.microseconds)::bigint::text::xid8, \(after.map { Int64($0.sequence) })::integer))
          AND (\(since?.microseconds)::bigint IS NULL
               OR (xid, n) >= (SELECT xid, n FROM jobstore_events WHERE at >= \(since?.microseconds) ORDER BY at LIMIT 1))
          AND \(unescaped: settled)
        ORDER BY xid, n LIMIT \(Int64(limit) + 1)
        """
    }

    /// The newest settled event's position.
    static func lastHistoryPosition() -> PostgresQuery {
        "SELECT xid::text::bigint, n FROM jobstore_events WHERE \(unescaped: settled) ORDER BY xid DESC, n DESC LIMIT 1"
    }

    static func countHistory(before cutoff: Timestamp) -> PostgresQuery {
        "SELECT count(*)::bigint FROM jobstore_events WHERE at < \(cutoff.microseconds)"
    }

    /// Deletes up to `limit` of the events recorded before `cutoff`, oldest first; returns how many.
    static func pruneHistory(before cutoff: Timestamp, limit: Int) -> PostgresQuery {
        """
        WITH gone AS (
            DELETE FROM jobstore_events WHERE (xid, n) IN (
                SELECT xid, n FROM jobstore_events WHERE at < \(cutoff.microseconds) ORDER BY at LIMIT \(Int64(limit)))
            RETURNING 1)
        SELECT count(*)::bigint FROM gone
        """
    }

    // MARK: Queue control

    /// The columns of a queue row, in the order ``QueueRow`` decodes them.
    static let queueColumns = "paused_at, rate_starts, rate_period, rate_tokens, rate_refilled_at"

    /// A queue's control row, locked (a rate-limited claim spends its tokens).
    static func queueControl(_ queue: String) -> PostgresQuery {
        "SELECT \(unescaped: queueColumns) FROM jobstore_queues WHERE queue = \(queue) FOR UPDATE"
    }

    /// Every queue's pause and rate limit, locked (for a claim from every queue).
    static func queueControls() -> PostgresQuery {
        "SELECT queue, \(unescaped: queueColumns) FROM jobstore_queues ORDER BY queue FOR UPDATE"
    }

    /// Pauses a queue (keeping the first pause's time); returns whether it was running (as the
    /// statement's snapshot saw it: two pausers at the same instant may both say so).
    static func pause(_ queue: String, at now: Timestamp) -> PostgresQuery {
        """
        WITH before AS (SELECT paused_at FROM jobstore_queues WHERE queue = \(queue))
        INSERT INTO jobstore_queues (queue, paused_at) VALUES (\(queue), \(now.microseconds))
        ON CONFLICT (queue) DO UPDATE SET paused_at = coalesce(jobstore_queues.paused_at, excluded.paused_at)
        RETURNING NOT EXISTS (SELECT 1 FROM before WHERE paused_at IS NOT NULL)
        """
    }

    /// Resumes a paused queue; a row when it was paused.
    static func resume(_ queue: String) -> PostgresQuery {
        "UPDATE jobstore_queues SET paused_at = NULL WHERE queue = \(queue) AND paused_at IS NOT NULL RETURNING 1"
    }

    /// Removes a queue's rate limit; a row when it had one.
    static func removeRateLimit(_ queue: String) -> PostgresQuery {
        """
        UPDATE jobstore_queues SET rate_starts = NULL, rate_period = NULL, rate_tokens = NULL, rate_refilled_at = NULL
        WHERE queue = \(queue) AND rate_starts IS NOT NULL RETURNING 1
        """
    }

    /// Sets (or, with `nil`, removes) a queue's rate limit bucket.
    static func setRateLimit(_ queue: String, _ limit: RateLimit?) -> PostgresQuery {
        """
        INSERT INTO jobstore_queues (queue, rate_starts, rate_period, rate_tokens, rate_refilled_at)
        VALUES (\(queue), \(limit.map { Int32($0.starts) }), \(limit?.periodMicroseconds), \(limit?.tokens), \(limit?.refilledAt.microseconds))
        ON CONFLICT (queue) DO UPDATE SET rate_starts = excluded.rate_starts, rate_period = excluded.rate_period,
            rate_tokens = excluded.rate_tokens, rate_refilled_at = excluded.rate_refilled_at
        """
    }

    /// Wakes every scheduler (a queue was resumed or its limit changed).
    static func wake() -> PostgresQuery { "SELECT pg_notify('jobstore', 'work')" }

    // MARK: Schedules

    /// The columns of a schedule row, in the order ``ScheduleRow`` decodes them.
    static let scheduleColumns = """
        name, timing, time_zone, queue, job_name, missed_ticks, last_tick, next_tick, updated_at,
        job_priority, job_max_attempts, job_tenant, job_unique_key, job_payload, job_timeout_us, job_headers
        """
    /// ``scheduleColumns`` to read: the headers as text.
    static let scheduleSelection = scheduleColumns.replacingOccurrences(of: "job_headers", with: "job_headers::text")

    static func schedule(_ name: String) -> PostgresQuery {
        "SELECT \(unescaped: scheduleSelection) FROM jobstore_schedules WHERE name = \(name) FOR UPDATE"
    }

    /// Registers or updates a schedule. The last tick only moves forward: two processes
    /// registering at once (neither saw the other's row) must not undo a tick already enqueued.
    static func upsert(_ schedule: ScheduleRecord) throws -> PostgresQuery {
        let job = schedule.job
        return """
            INSERT INTO jobstore_schedules (\(unescaped: scheduleColumns)) VALUES (
                \(schedule.name), \(schedule.timing), \(schedule.timeZone), \(schedule.queue), \(schedule.jobName),
                \(Int16(schedule.missedTicks.rawValue)), \(schedule.lastTick?.microseconds), \(schedule.nextTick?.microseconds),
                \(schedule.updatedAt.microseconds), \(job.map { Int16($0.priority) }), \(job.map { Int32($0.maxAttempts) }),
                \(job?.tenant), \(job?.uniqueKey), \(job.map { ByteBuffer(bytes: $0.payload) }), \(job?.timeout?.wholeMicroseconds),
                \(try job.flatMap { try JobRow.headersJSON($0.headers) })::jsonb)
            ON CONFLICT (name) DO UPDATE SET timing = excluded.timing, time_zone = excluded.time_zone, queue = excluded.queue,
                job_name = excluded.job_name, missed_ticks = excluded.missed_ticks,
                last_tick = greatest(jobstore_schedules.last_tick, excluded.last_tick),
                next_tick = excluded.next_tick, updated_at = excluded.updated_at,
                job_priority = excluded.job_priority, job_max_attempts = excluded.job_max_attempts, job_tenant = excluded.job_tenant,
                job_unique_key = excluded.job_unique_key, job_payload = excluded.job_payload, job_timeout_us = excluded.job_timeout_us,
                job_headers = excluded.job_headers
            """
    }
}

extension PruneSelection {
    /// The jobs' column it compares: a finished job's last change is its finish.
    fileprivate var jobColumn: String {
        switch self {
        case .createdBefore: "created_at"
        case .finishedBefore: "updated_at"
        }
    }

    /// The pipelines' column it compares.
    fileprivate var pipelineColumn: String {
        switch self {
        case .createdBefore: "created_at"
        case .finishedBefore: "finished_at"
        }
    }
}
