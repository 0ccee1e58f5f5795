/*
 * JobBench in hand-written C on SQLite: what a team would build instead of JobStore, done with
 * care — WAL, every statement prepared once, the indexes the workload's queries need (a
 * partial index of ready jobs in claim order), counts per state kept O(1) by triggers in the
 * same transaction, claims by `UPDATE … RETURNING`. Same generator, phases, checks and JSON
 * lines as `jobstore bench` ("store":"c-sqlite").
 *
 *   cc -O2 -o jobbench-sqlite jobbench-sqlite.c -lsqlite3 -lpthread
 *   ./jobbench-sqlite --jobs N --durability full|relaxed --dir PATH [--phases a,b,…]
 *
 * Durability: full is synchronous=FULL (every commit flushes the WAL), relaxed synchronous=OFF.
 * The concurrent phases give each of the 8 threads its own connection; SQLite has one writer
 * at a time and no group commit, so each call is its own transaction (BEGIN IMMEDIATE, waiting
 * on the lock with a busy timeout).
 */
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "jobbench.h"

static void check(sqlite3 *db, int rc, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
        exit(2);
    }
}

static const char *schema =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE jobs (id BLOB PRIMARY KEY, name TEXT NOT NULL, queue TEXT NOT NULL, tenant TEXT, state INTEGER NOT NULL,"
    " priority INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, run_at INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL, lease_expires_at INTEGER, lease_owner BLOB,"
    " payload BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX jobs_state_created ON jobs (state, created_at, id);"
    "CREATE INDEX jobs_created ON jobs (created_at, id);"
    "CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, id) WHERE state = 1;"
    "CREATE TABLE counts (state INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
    "INSERT INTO counts VALUES (0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0);"
    "CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs BEGIN UPDATE counts SET n = n + 1 WHERE state = new.state; END;"
    "CREATE TRIGGER jobs_moved AFTER UPDATE OF state ON jobs WHEN old.state <> new.state BEGIN"
    " UPDATE counts SET n = n - 1 WHERE state = old.state; UPDATE counts SET n = n + 1 WHERE state = new.state; END;"
    "CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs BEGIN UPDATE counts SET n = n - 1 WHERE state = old.state; END;";

#define COLUMNS "id, name, queue, tenant, state, priority, created_at, updated_at, run_at, attempts, max_attempts, lease_expires_at, lease_owner, payload"

/* One connection with its statements, prepared once. */
typedef struct {
    sqlite3 *db;
    sqlite3_stmt *begin, *commit, *insert, *get, *pending_oldest, *counts, *time_range, *scan, *to_running, *to_succeeded,
        *claim, *claim_batch, *state_of;
} connection_t;

static const char *dir_path;

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql) {
    sqlite3_stmt *statement;
    check(db, sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement, NULL), sql);
    return statement;
}

static void open_connection(connection_t *c) {
    char path[4096];
    snprintf(path, sizeof path, "%s/jobs.sqlite", dir_path);
    check(NULL, sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL), "open");
    sqlite3_busy_timeout(c->db, 60000);
    check(c->db, sqlite3_exec(c->db, strcmp(durability, "full") ? "PRAGMA synchronous=OFF" : "PRAGMA synchronous=FULL", NULL, NULL, NULL), "pragma");
    check(c->db, sqlite3_exec(c->db, "PRAGMA cache_size=-262144", NULL, NULL, NULL), "cache");
}

static void prepare_all(connection_t *c) {
    sqlite3 *db = c->db;
    c->begin = prepare(db, "BEGIN IMMEDIATE");
    c->commit = prepare(db, "COMMIT");
    c->insert = prepare(db, "INSERT INTO jobs (" COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    c->get = prepare(db, "SELECT " COLUMNS " FROM jobs WHERE id = ?");
    c->pending_oldest = prepare(db, "SELECT " COLUMNS " FROM jobs WHERE state = 1 ORDER BY created_at, id LIMIT 100");
    c->counts = prepare(db, "SELECT state, n FROM counts");
    c->time_range = prepare(db, "SELECT id FROM jobs WHERE created_at >= ? AND created_at < ? ORDER BY created_at, id");
    /* The no-index baseline reads every row: the payload keeps SQLite off the covering indexes. */
    c->scan = prepare(db, "SELECT count(*) FROM jobs NOT INDEXED WHERE +state = 1 AND payload IS NOT NULL");
    c->to_running = prepare(db, "UPDATE jobs SET state = 2, attempts = attempts + 1, lease_expires_at = ?1 + 300000000,"
                                " lease_owner = ?2, updated_at = ?1 WHERE id = ?3 AND state = 1");
    c->to_succeeded = prepare(db, "UPDATE jobs SET state = 3, lease_expires_at = NULL, lease_owner = NULL, updated_at = ?1"
                                  " WHERE id = ?2 AND state = 2");
    c->claim = prepare(db, "UPDATE jobs SET state = 2, attempts = attempts + 1, lease_expires_at = ?1 + 300000000,"
                           " lease_owner = ?2, updated_at = ?1 WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_ready WHERE state = 1 AND run_at <= ?1"
                           " ORDER BY priority DESC, run_at, id LIMIT ?3) RETURNING " COLUMNS);
    c->claim_batch = c->claim;
    c->state_of = prepare(db, "SELECT state FROM jobs WHERE id = ?");
}

static void step_done(connection_t *c, sqlite3_stmt *statement, const char *what) {
    int rc = sqlite3_step(statement);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) check(c->db, rc, what);
    sqlite3_reset(statement);
}

static void begin(connection_t *c) { step_done(c, c->begin, "begin"); }
static void commit(connection_t *c) { step_done(c, c->commit, "commit"); }

static void insert(connection_t *c, const job_t *job) {
    sqlite3_stmt *s = c->insert;
    sqlite3_bind_blob(s, 1, job->id, 16, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, job->name, job->name_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, job->queue, job->queue_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, job->tenant, job->tenant_len, SQLITE_STATIC);
    sqlite3_bind_int(s, 5, job->state);
    sqlite3_bind_int(s, 6, job->priority);
    sqlite3_bind_int64(s, 7, job->created_at);
    sqlite3_bind_int64(s, 8, job->updated_at);
    sqlite3_bind_int64(s, 9, job->run_at);
    sqlite3_bind_int(s, 10, job->attempts);
    sqlite3_bind_int(s, 11, job->max_attempts);
    if (job->state == RUNNING) {
        sqlite3_bind_int64(s, 12, job->lease_expires_at);
        sqlite3_bind_blob(s, 13, job->lease_owner, 16, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(s, 12);
        sqlite3_bind_null(s, 13);
    }
    sqlite3_bind_blob(s, 14, job->payload, job->payload_len, SQLITE_STATIC);
    step_done(c, s, "insert");
}

static void copy_text(sqlite3_stmt *s, int column, char *out, uint8_t *len, int limit) {
    int n = sqlite3_column_bytes(s, column);
    const unsigned char *text = sqlite3_column_text(s, column);
    if (n > limit) fail("a text column is longer than its limit");
    if (text) memcpy(out, text, (size_t)n);
    out[n] = 0;
    *len = (uint8_t)n;
}

/* Copies every column of the current row into `job`. */
static void read_row(sqlite3_stmt *s, job_t *job) {
    if (sqlite3_column_bytes(s, 0) != 16) fail("an id is not 16 bytes");
    memcpy(job->id, sqlite3_column_blob(s, 0), 16);
    copy_text(s, 1, job->name, &job->name_len, 32);
    copy_text(s, 2, job->queue, &job->queue_len, 64);
    copy_text(s, 3, job->tenant, &job->tenant_len, 64);
    job->state = (uint8_t)sqlite3_column_int(s, 4);
    job->priority = (uint8_t)sqlite3_column_int(s, 5);
    job->created_at = sqlite3_column_int64(s, 6);
    job->updated_at = sqlite3_column_int64(s, 7);
    job->run_at = sqlite3_column_int64(s, 8);
    job->attempts = (uint16_t)sqlite3_column_int(s, 9);
    job->max_attempts = (uint16_t)sqlite3_column_int(s, 10);
    job->lease_expires_at = sqlite3_column_int64(s, 11);
    memset(job->lease_owner, 0, 16);
    if (sqlite3_column_bytes(s, 12) == 16) memcpy(job->lease_owner, sqlite3_column_blob(s, 12), 16);
    int size = sqlite3_column_bytes(s, 13);
    if (size > 256) fail("a payload is longer than 256 bytes");
    memcpy(job->payload, sqlite3_column_blob(s, 13), (size_t)size);
    job->payload_len = (uint16_t)size;
}

static int get_job(connection_t *c, const uint8_t id[16], job_t *job) {
    sqlite3_bind_blob(c->get, 1, id, 16, SQLITE_STATIC);
    int rc = sqlite3_step(c->get), found = rc == SQLITE_ROW;
    if (found) read_row(c->get, job); else if (rc != SQLITE_DONE) check(c->db, rc, "get");
    sqlite3_reset(c->get);
    return found;
}

static int state_of(connection_t *c, const uint8_t id[16]) {
    sqlite3_bind_blob(c->state_of, 1, id, 16, SQLITE_STATIC);
    int state = sqlite3_step(c->state_of) == SQLITE_ROW ? sqlite3_column_int(c->state_of, 0) : -1;
    sqlite3_reset(c->state_of);
    return state;
}

static int64_t count_of(connection_t *c, int state) {
    int64_t n = -1;
    while (sqlite3_step(c->counts) == SQLITE_ROW)
        if (sqlite3_column_int(c->counts, 0) == state) n = sqlite3_column_int64(c->counts, 1);
    sqlite3_reset(c->counts);
    return n;
}

/* Moves one job (with `statement`: to_running or to_succeeded); 0 if it was not in the state. */
static int move(connection_t *c, sqlite3_stmt *statement, const uint8_t id[16], uint64_t now) {
    sqlite3_bind_int64(statement, 1, (int64_t)now);
    if (statement == c->to_running) {
        uint8_t owner[16] = {0};
        put_be64(owner, now);
        sqlite3_bind_blob(statement, 2, owner, 16, SQLITE_TRANSIENT);
        sqlite3_bind_blob(statement, 3, id, 16, SQLITE_STATIC);
    } else {
        sqlite3_bind_blob(statement, 2, id, 16, SQLITE_STATIC);
    }
    step_done(c, statement, "move");
    return sqlite3_changes(c->db) == 1;
}

/* Claims up to `limit` ready jobs in claim order; returns how many, their ids in `ids`. */
static int claim(connection_t *c, int limit, uint8_t (*ids)[16], uint64_t now) {
    sqlite3_stmt *s = c->claim;
    uint8_t owner[16] = {0};
    put_be64(owner, now);
    sqlite3_bind_int64(s, 1, (int64_t)now);
    sqlite3_bind_blob(s, 2, owner, 16, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 3, limit);
    int found = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        job_t job;
        read_row(s, &job);
        memcpy(ids[found++], job.id, 16);
    }
    if (rc != SQLITE_DONE) check(c->db, rc, "claim");
    sqlite3_reset(s);
    return found;
}

static connection_t main_connection;

/* ---- phases ---- */

static void phase_load(void) {
    connection_t *c = &main_connection;
    double elapsed = 0;
    job_t *batch = malloc(sizeof(job_t) * 1000);
    for (int64_t start = 0; start < N; start += 1000) {
        int64_t end = start + 1000 < N ? start + 1000 : N;
        for (int64_t n = start; n < end; n++) make_job(n, load_state(n), &batch[n - start]);
        double t = mono();
        begin(c);
        for (int64_t n = start; n < end; n++) insert(c, &batch[n - start]);
        commit(c);
        elapsed += mono() - t;
    }
    free(batch);
    total = N;
    emit("load", N, elapsed, NULL, 0, NULL);
}

static void phase_insert_single(void) {
    connection_t *c = &main_connection;
    int64_t count = scaled(10000);
    double *lat = malloc(sizeof(double) * (size_t)count), sum = 0;
    for (int64_t i = 0; i < count; i++) {
        job_t job;
        make_job(total + i, PENDING, &job);
        double t = mono();
        begin(c);
        insert(c, &job);
        commit(c);
        lat[i] = (mono() - t) * 1e6;
        sum += lat[i];
    }
    total += count;
    emit("insert-single", count, sum / 1e6, lat, count, NULL);
    free(lat);
}

typedef struct {
    int worker;
    int64_t first, count, share, done;
    double *lat;
    uint8_t (*claimed)[16];
} worker_t;

static void *producer_main(void *arg) {
    worker_t *w = arg;
    connection_t c;
    open_connection(&c);
    prepare_all(&c);
    for (int64_t n = w->first + w->worker; n < w->first + w->count; n += 8) {
        job_t job;
        make_job(n, PENDING, &job);
        double t = mono();
        begin(&c);
        insert(&c, &job);
        commit(&c);
        w->lat[w->done++] = (mono() - t) * 1e6;
    }
    sqlite3_close_v2(c.db);
    return NULL;
}

static void *claimer_main(void *arg) {
    worker_t *w = arg;
    connection_t c;
    open_connection(&c);
    prepare_all(&c);
    while (w->done < w->share) {
        begin(&c);
        int found = claim(&c, 1, &w->claimed[w->done], now_us());
        commit(&c);
        if (!found) fail("claim-concurrent found no ready job");
        begin(&c);
        int moved = move(&c, c.to_succeeded, w->claimed[w->done], now_us());
        commit(&c);
        if (!moved) fail("claim-concurrent: a claimed job was not running");
        w->done++;
    }
    sqlite3_close_v2(c.db);
    return NULL;
}

static double run_workers(worker_t *workers, void *(*body)(void *)) {
    pthread_t threads[8];
    double t = mono();
    for (int i = 0; i < 8; i++) pthread_create(&threads[i], NULL, body, &workers[i]);
    for (int i = 0; i < 8; i++) pthread_join(threads[i], NULL);
    return mono() - t;
}

static void phase_insert_concurrent(void) {
    int64_t count = scaled(20000), at = 0;
    worker_t workers[8];
    double *lat = malloc(sizeof(double) * (size_t)count);
    for (int i = 0; i < 8; i++) {
        workers[i] = (worker_t){.worker = i, .first = total, .count = count, .lat = lat + at};
        for (int64_t n = total + i; n < total + count; n += 8) at++;
    }
    double wall = run_workers(workers, producer_main);
    total += count;
    emit("insert-concurrent", count, wall, lat, count, NULL);
    free(lat);
}

static void phase_get(void) {
    connection_t *c = &main_connection;
    int64_t count = scaled(1000000), missing = 0;
    stream_t s = {1001, 0};
    uint8_t (*ids)[16] = malloc((size_t)count * 16);
    for (int64_t i = 0; i < count; i++) job_id(stream_below(&s, total), ids[i]);
    double *lat = malloc(sizeof(double) * (size_t)count), sum = 0;
    for (int64_t i = 0; i < count; i++) {
        job_t job;
        double t = mono();
        int found = get_job(c, ids[i], &job);
        lat[i] = (mono() - t) * 1e6;
        sum += lat[i];
        if (!found) missing++;
    }
    if (missing) fail("get: ids not found");
    emit("get", count, sum / 1e6, lat, count, NULL);
    free(lat);
    free(ids);
}

static void phase_pending_oldest(void) {
    connection_t *c = &main_connection;
    int64_t count = scaled(10000), rows = 0;
    double *lat = malloc(sizeof(double) * (size_t)count), sum = 0;
    job_t *page = malloc(sizeof(job_t) * 100);
    for (int64_t q = 0; q < count; q++) {
        double t = mono();
        int found = 0;
        while (sqlite3_step(c->pending_oldest) == SQLITE_ROW) read_row(c->pending_oldest, &page[found++]);
        sqlite3_reset(c->pending_oldest);
        lat[q] = (mono() - t) * 1e6;
        sum += lat[q];
        rows += found;
    }
    int64_t pending = count_of(c, PENDING);
    if (rows != count * (pending < 100 ? pending : 100)) fail("pending-oldest returned the wrong number of rows");
    emit("pending-oldest", count, sum / 1e6, lat, count, NULL);
    free(lat);
    free(page);
}

static void phase_count_by_state(void) {
    connection_t *c = &main_connection;
    int64_t count = scaled(10000), sum = 0;
    double t = mono();
    for (int64_t q = 0; q < count; q++) {
        while (sqlite3_step(c->counts) == SQLITE_ROW) sum += sqlite3_column_int64(c->counts, 1);
        sqlite3_reset(c->counts);
    }
    double elapsed = mono() - t;
    if (sum != count * total) fail("count-by-state sums differ");
    emit("count-by-state", count, elapsed, NULL, 0, NULL);
}

static void phase_time_range(void) {
    connection_t *c = &main_connection;
    int64_t queries = scaled(1000), window = N / 100, rows = 0;
    stream_t s = {1002, 0};
    uint8_t (*ids)[16] = malloc((size_t)window * 16 + 16);
    double t = mono();
    for (int64_t q = 0; q < queries; q++) {
        int64_t first = stream_below(&s, N - window + 1);
        sqlite3_bind_int64(c->time_range, 1, created_at(first));
        sqlite3_bind_int64(c->time_range, 2, created_at(first + window));
        int64_t found = 0;
        while (sqlite3_step(c->time_range) == SQLITE_ROW) {
            if (found <= window) memcpy(ids[found], sqlite3_column_blob(c->time_range, 0), 16);
            found++;
        }
        sqlite3_reset(c->time_range);
        rows += found;
    }
    double elapsed = mono() - t;
    free(ids);
    char extra[96];
    snprintf(extra, sizeof extra, "\"queries\":%lld,\"rows_per_query\":%.1f", (long long)queries, (double)rows / (double)queries);
    emit("time-range", rows, elapsed, NULL, 0, extra);
}

static void phase_scan_filter(void) {
    connection_t *c = &main_connection;
    int64_t found = 0;
    double t = mono();
    for (int q = 0; q < 10; q++) {
        if (sqlite3_step(c->scan) == SQLITE_ROW) found += sqlite3_column_int64(c->scan, 0);
        sqlite3_reset(c->scan);
    }
    double elapsed = mono() - t;
    if (found != 10 * count_of(c, PENDING)) fail("scan-filter found a different number of pending jobs than the counter");
    emit("scan-filter", 10, elapsed, NULL, 0, NULL);
}

/* Draws job numbers until one is in `state` (not timed). */
static void random_job(int state, stream_t *s, uint8_t id[16]) {
    do job_id(stream_below(s, total), id);
    while (state_of(&main_connection, id) != state);
}

static void phase_transition(void) {
    connection_t *c = &main_connection;
    int64_t count = scaled(20000);
    stream_t s = {1003, 0};
    double *lat = malloc(sizeof(double) * (size_t)count), sum = 0;
    for (int64_t i = 0; i < count; i++) {
        uint8_t id[16];
        random_job(PENDING, &s, id);
        double t = mono();
        begin(c);
        int moved = move(c, c->to_running, id, now_us());
        commit(c);
        if (!moved) fail("transition: not pending");
        lat[i] = (mono() - t) * 1e6;
        sum += lat[i];
    }
    emit("transition", count, sum / 1e6, lat, count, NULL);
    free(lat);
}

static void phase_transition_batch(void) {
    connection_t *c = &main_connection;
    int64_t count = scaled(50000), done = 0;
    stream_t s = {1004, 0};
    double elapsed = 0;
    uint8_t batch[100][16];
    while (done < count) {
        int size = count - done < 100 ? (int)(count - done) : 100;
        for (int i = 0; i < size; i++) {
            int repeated;
            do {
                random_job(RUNNING, &s, batch[i]);
                repeated = 0;
                for (int j = 0; j < i; j++) if (!memcmp(batch[i], batch[j], 16)) repeated = 1;
            } while (repeated);
        }
        double t = mono();
        begin(c);
        uint64_t now = now_us();
        for (int i = 0; i < size; i++)
            if (!move(c, c->to_succeeded, batch[i], now)) fail("transition-batch: not running");
        commit(c);
        elapsed += mono() - t;
        done += size;
    }
    emit("transition-batch", count, elapsed, NULL, 0, NULL);
}

static void check_claimed(uint8_t (*ids)[16], int64_t count, const char *phase) {
    check_claimed_once(ids, count, phase);
    for (int64_t i = 0; i < count; i++)
        if (state_of(&main_connection, ids[i]) != SUCCEEDED) { fprintf(stderr, "%s: ", phase); fail("a claimed job is not succeeded"); }
}

static void phase_claim(void) {
    connection_t *c = &main_connection;
    int64_t count = scaled(20000);
    double *lat = malloc(sizeof(double) * (size_t)count), sum = 0;
    uint8_t (*ids)[16] = malloc((size_t)count * 16);
    for (int64_t i = 0; i < count; i++) {
        double t = mono();
        begin(c);
        int found = claim(c, 1, &ids[i], now_us());
        commit(c);
        if (!found) fail("claim found no ready job");
        begin(c);
        int moved = move(c, c->to_succeeded, ids[i], now_us());
        commit(c);
        if (!moved) fail("claim: the claimed job was not running");
        lat[i] = (mono() - t) * 1e6;
        sum += lat[i];
    }
    check_claimed(ids, count, "claim");
    emit("claim", count, sum / 1e6, lat, count, NULL);
    free(lat);
    free(ids);
}

static void phase_claim_batch(void) {
    connection_t *c = &main_connection;
    int64_t count = scaled(40000), done = 0;
    uint8_t (*ids)[16] = malloc((size_t)count * 16);
    double t = mono();
    while (done < count) {
        int size = count - done < 100 ? (int)(count - done) : 100;
        begin(c);
        int found = claim(c, size, &ids[done], now_us());
        commit(c);
        if (found != size) fail("claim-batch ran out of ready jobs");
        begin(c);
        uint64_t now = now_us();
        for (int i = 0; i < size; i++)
            if (!move(c, c->to_succeeded, ids[done + i], now)) fail("claim-batch: a claimed job was not running");
        commit(c);
        done += size;
    }
    double elapsed = mono() - t;
    check_claimed(ids, count, "claim-batch");
    emit("claim-batch", count, elapsed, NULL, 0, NULL);
    free(ids);
}

static void phase_claim_concurrent(void) {
    int64_t count = scaled(20000), at = 0;
    uint8_t (*ids)[16] = malloc((size_t)count * 16);
    worker_t workers[8];
    for (int i = 0; i < 8; i++) {
        int64_t share = count / 8 + (i < count % 8 ? 1 : 0);
        workers[i] = (worker_t){.worker = i, .share = share, .claimed = ids + at};
        at += share;
    }
    double wall = run_workers(workers, claimer_main);
    check_claimed(ids, count, "claim-concurrent");
    emit("claim-concurrent", count, wall, NULL, 0, NULL);
    free(ids);
}

/* The counters equal a recount, and SQLite finds its indexes intact. */
static void final_checks(void) {
    connection_t *c = &main_connection;
    sqlite3_stmt *recount = prepare(c->db, "SELECT state, count(*) FROM jobs NOT INDEXED GROUP BY state");
    int64_t counted[STATES] = {0};
    while (sqlite3_step(recount) == SQLITE_ROW) counted[sqlite3_column_int(recount, 0)] = sqlite3_column_int64(recount, 1);
    sqlite3_finalize(recount);
    for (int s = 0; s < STATES; s++)
        if (count_of(c, s) != counted[s]) fail("a counter differs from the recount");
    sqlite3_stmt *integrity = prepare(c->db, "PRAGMA integrity_check");
    if (sqlite3_step(integrity) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(integrity, 0), "ok")) fail("integrity_check");
    sqlite3_finalize(integrity);
}

int main(int argc, char **argv) {
    const char *phases;
    store_name = "c-sqlite";
    parse_options(argc, argv, &dir_path, &phases);
    char path[4096];
    snprintf(path, sizeof path, "%s/jobs.sqlite", dir_path);
    struct stat st;
    if (stat(path, &st) == 0) { fprintf(stderr, "%s already holds a store\n", dir_path); return 2; }
    mkdir(dir_path, 0755);
    connection_t *c = &main_connection;
    open_connection(c);
    check(c->db, sqlite3_exec(c->db, schema, NULL, NULL, NULL), "schema");
    prepare_all(c);

    static void (*bodies[PHASES])(void) = {phase_insert_single, phase_insert_concurrent, phase_get, phase_pending_oldest,
                                           phase_count_by_state, phase_time_range, phase_scan_filter, phase_transition,
                                           phase_transition_batch, phase_claim, phase_claim_batch, phase_claim_concurrent};
    phase_load();
    for (int p = 0; p < PHASES; p++) {
        if (!listed(phases, phase_names[p])) continue;
        bodies[p]();
        sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL); /* untimed */
    }
    final_checks();
    sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    long long bytes = stat(path, &st) == 0 ? (long long)st.st_blocks * 512 : 0;
    snprintf(path, sizeof path, "%s/jobs.sqlite-wal", dir_path);
    if (stat(path, &st) == 0) bytes += (long long)st.st_blocks * 512;
    emit_size(bytes);
    sqlite3_close_v2(c->db);
    return 0;
}
