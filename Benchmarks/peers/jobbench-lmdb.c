/*
 * JobBench in hand-written C on liblmdb: the limit of what LMDB can do for the workload of
 * docs/JOBBENCH.md, the peer `jobstore bench` is measured against. Same generator, same seed,
 * same phases, same checks, same JSON lines ("store":"c-lmdb").
 *
 *   cc -O2 -o jobbench-lmdb jobbench-lmdb.c -llmdb -lpthread
 *   ./jobbench-lmdb --jobs N --durability full|relaxed --dir PATH [--phases a,b,…]
 *
 * The design a careful C programmer would choose, and no more: one record per job (a packed
 * header of fixed fields, then name, queue, tenant and payload), keyed by its 16-byte id;
 * three indexes (state·createdAt·id, createdAt·id, and the ready index (255 − priority)·runAt·id
 * of pending jobs); a counter per state; every change of a job moves its index entries and
 * counters in the same transaction; a record or creation-time key past the last goes in with
 * MDB_APPEND. Reads renew one reset read transaction. The concurrent
 * phases go through a plain group commit: callers queue their change, one writer thread applies
 * everything queued in one transaction and commits, then wakes them.
 */
#include <lmdb.h>
#include <pthread.h>
#include <sys/stat.h>

#include "jobbench.h"

#define CHECK(call)                                                                              \
    do {                                                                                         \
        int rc_ = (call);                                                                        \
        if (rc_ != 0) {                                                                          \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, mdb_strerror(rc_));    \
            exit(2);                                                                             \
        }                                                                                        \
    } while (0)

/* ---- the record: a packed header of the fixed fields, then name, queue, tenant, payload ---- */

#pragma pack(push, 1)
typedef struct {
    uint8_t version, state, priority, name_len, queue_len, tenant_len;
    uint16_t attempts, max_attempts, payload_len;
    int64_t created_at, updated_at, run_at, lease_expires_at;
    uint8_t lease_owner[16];
} header_t;
#pragma pack(pop)

static size_t encode(const job_t *job, uint8_t *out) {
    header_t h = {1, job->state, job->priority, job->name_len, job->queue_len, job->tenant_len, job->attempts, job->max_attempts,
                  job->payload_len, job->created_at, job->updated_at, job->run_at, job->lease_expires_at, {0}};
    memcpy(h.lease_owner, job->lease_owner, 16);
    memcpy(out, &h, sizeof h);
    size_t at = sizeof h;
    memcpy(out + at, job->name, job->name_len); at += job->name_len;
    memcpy(out + at, job->queue, job->queue_len); at += job->queue_len;
    memcpy(out + at, job->tenant, job->tenant_len); at += job->tenant_len;
    memcpy(out + at, job->payload, job->payload_len); at += job->payload_len;
    return at;
}

/* Copies every field out of the mapped record. */
static void decode(const uint8_t id[16], const MDB_val *v, job_t *job) {
    const uint8_t *p = v->mv_data;
    header_t h;
    if (v->mv_size < sizeof h) fail("short record");
    memcpy(&h, p, sizeof h);
    size_t at = sizeof h;
    if (v->mv_size != at + h.name_len + h.queue_len + h.tenant_len + h.payload_len || h.payload_len > 256 || h.name_len > 32 ||
        h.queue_len > 64 || h.tenant_len > 64)
        fail("bad record length");
    memcpy(job->id, id, 16);
    job->state = h.state; job->priority = h.priority; job->attempts = h.attempts; job->max_attempts = h.max_attempts;
    job->created_at = h.created_at; job->updated_at = h.updated_at; job->run_at = h.run_at;
    job->lease_expires_at = h.lease_expires_at;
    memcpy(job->lease_owner, h.lease_owner, 16);
    job->name_len = h.name_len; job->queue_len = h.queue_len; job->tenant_len = h.tenant_len; job->payload_len = h.payload_len;
    memcpy(job->name, p + at, h.name_len); job->name[h.name_len] = 0; at += h.name_len;
    memcpy(job->queue, p + at, h.queue_len); job->queue[h.queue_len] = 0; at += h.queue_len;
    memcpy(job->tenant, p + at, h.tenant_len); job->tenant[h.tenant_len] = 0; at += h.tenant_len;
    memcpy(job->payload, p + at, h.payload_len);
}

/* ---- the store ---- */

static MDB_env *env;
static MDB_dbi db_jobs, db_state_created, db_created, db_ready, db_counters;
static int64_t counters[STATES]; /* this transaction's changes, applied at its end */

static MDB_val val(void *data, size_t size) { MDB_val v = {size, data}; return v; }
static MDB_val empty = {0, ""};

static void key_state_created(uint8_t k[25], int state, int64_t created, const uint8_t id[16]) {
    k[0] = (uint8_t)state;
    put_be64(k + 1, (uint64_t)created ^ 0x8000000000000000ULL);
    memcpy(k + 9, id, 16);
}
static void key_created(uint8_t k[24], int64_t created, const uint8_t id[16]) {
    put_be64(k, (uint64_t)created ^ 0x8000000000000000ULL);
    memcpy(k + 8, id, 16);
}
static void key_ready(uint8_t k[25], const job_t *job) {
    k[0] = (uint8_t)(255 - job->priority);
    put_be64(k + 1, (uint64_t)job->run_at ^ 0x8000000000000000ULL);
    memcpy(k + 9, job->id, 16);
}

static void index_put(MDB_txn *txn, const job_t *job) {
    uint8_t k[25];
    MDB_val kv;
    key_state_created(k, job->state, job->created_at, job->id);
    kv = val(k, 25);
    CHECK(mdb_put(txn, db_state_created, &kv, &empty, 0));
    if (job->state == PENDING) {
        key_ready(k, job);
        kv = val(k, 25);
        CHECK(mdb_put(txn, db_ready, &kv, &empty, 0));
    }
    counters[job->state]++;
}
static void index_del(MDB_txn *txn, const job_t *job) {
    uint8_t k[25];
    MDB_val kv;
    key_state_created(k, job->state, job->created_at, job->id);
    kv = val(k, 25);
    CHECK(mdb_del(txn, db_state_created, &kv, NULL));
    if (job->state == PENDING) {
        key_ready(k, job);
        kv = val(k, 25);
        CHECK(mdb_del(txn, db_ready, &kv, NULL));
    }
    counters[job->state]--;
}

static void put_record(MDB_txn *txn, const job_t *job, unsigned flags) {
    uint8_t buffer[sizeof(header_t) + 32 + 64 + 64 + 256];
    MDB_val k = val((void *)job->id, 16), v = val(buffer, encode(job, buffer));
    CHECK(mdb_put(txn, db_jobs, &k, &v, flags));
}

/* The greatest record and creation-time keys put so far (the store is this process's, fresh):
 * a key past them goes in with MDB_APPEND, with no search, filling the last page. Ids and
 * creation times grow, so new jobs arrive in key order (JobStore: putAppendingIfLast). */
static uint8_t jobs_tail[16], created_tail[24];

static unsigned append_past(uint8_t *tail, const uint8_t *key, size_t length) {
    if (memcmp(key, tail, length) <= 0) return 0;
    memcpy(tail, key, length);
    return MDB_APPEND;
}

static void insert(MDB_txn *txn, const job_t *job) {
    uint8_t k[24];
    put_record(txn, job, MDB_NOOVERWRITE | append_past(jobs_tail, job->id, 16));
    key_created(k, job->created_at, job->id);
    MDB_val kv = val(k, 24);
    CHECK(mdb_put(txn, db_created, &kv, &empty, append_past(created_tail, k, 24)));
    index_put(txn, job);
}

static int get_job(MDB_txn *txn, const uint8_t id[16], job_t *job) {
    MDB_val k = val((void *)id, 16), v;
    int rc = mdb_get(txn, db_jobs, &k, &v);
    if (rc == MDB_NOTFOUND) return 0;
    CHECK(rc);
    decode(id, &v, job);
    return 1;
}

/* Moves a job to `state` (claim: to running with a lease; leaving running: no lease). */
static void move(MDB_txn *txn, job_t *job, int state, uint64_t now) {
    index_del(txn, job);
    job->state = (uint8_t)state;
    job->updated_at = (int64_t)now;
    if (state == RUNNING) {
        job->attempts++;
        job->lease_expires_at = (int64_t)now + 300000000;
        put_be64(job->lease_owner, now);
    } else {
        job->lease_expires_at = 0;
        memset(job->lease_owner, 0, 16);
    }
    put_record(txn, job, 0);
    index_put(txn, job);
}

static void write_counters(MDB_txn *txn) {
    for (int s = 0; s < STATES; s++) {
        if (!counters[s]) continue;
        uint8_t key = (uint8_t)s;
        MDB_val k = val(&key, 1), v;
        int64_t value = 0;
        int rc = mdb_get(txn, db_counters, &k, &v);
        if (rc == 0) memcpy(&value, v.mv_data, 8); else if (rc != MDB_NOTFOUND) CHECK(rc);
        value += counters[s];
        v = val(&value, 8);
        CHECK(mdb_put(txn, db_counters, &k, &v, 0));
        counters[s] = 0;
    }
}

static MDB_txn *begin_write(void) {
    MDB_txn *txn;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn));
    return txn;
}
static void commit(MDB_txn *txn) {
    write_counters(txn);
    CHECK(mdb_txn_commit(txn));
}

static MDB_txn *reader;
static MDB_txn *begin_read(void) {
    CHECK(mdb_txn_renew(reader));
    return reader;
}
static void end_read(void) { mdb_txn_reset(reader); }

/* Claims the next ready job (highest priority, earliest runAt, smallest id); 0 if none. */
static int claim_one(MDB_txn *txn, job_t *job, uint64_t now) {
    MDB_cursor *cursor;
    MDB_val k, v;
    CHECK(mdb_cursor_open(txn, db_ready, &cursor));
    int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
    /* Every later job of a priority whose first is in the future is too: jump to the next priority. */
    while (rc == 0 && (int64_t)(get_be64((uint8_t *)k.mv_data + 1) ^ 0x8000000000000000ULL) > (int64_t)now) {
        uint8_t level = ((uint8_t *)k.mv_data)[0];
        if (level == 255) { rc = MDB_NOTFOUND; break; }
        uint8_t next = level + 1;
        k = val(&next, 1);
        rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cursor);
    if (rc == MDB_NOTFOUND) return 0;
    CHECK(rc);
    uint8_t id[16];
    memcpy(id, (uint8_t *)k.mv_data + 9, 16);
    if (!get_job(txn, id, job) || job->state != PENDING) fail("the ready index names a job that is not pending");
    move(txn, job, RUNNING, now);
    return 1;
}

static int complete(MDB_txn *txn, const uint8_t id[16], uint64_t now) {
    job_t job;
    if (!get_job(txn, id, &job) || job.state != RUNNING) return 0;
    move(txn, &job, SUCCEEDED, now);
    return 1;
}

static int64_t read_counter(MDB_txn *txn, int state) {
    uint8_t key = (uint8_t)state;
    MDB_val k = val(&key, 1), v;
    int rc = mdb_get(txn, db_counters, &k, &v);
    if (rc == MDB_NOTFOUND) return 0;
    CHECK(rc);
    int64_t value;
    memcpy(&value, v.mv_data, 8);
    return value;
}

/* ---- group commit for the concurrent phases ---- */

typedef struct request {
    int kind; /* 0 insert, 1 claim, 2 complete */
    job_t job;
    int done, ok;
    struct request *next;
} request_t;

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_wake = PTHREAD_COND_INITIALIZER, queue_done = PTHREAD_COND_INITIALIZER;
static request_t *queue_head;
static int writer_stop;

static void *writer_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&queue_lock);
    for (;;) {
        while (!queue_head && !writer_stop) pthread_cond_wait(&queue_wake, &queue_lock);
        if (!queue_head && writer_stop) break;
        request_t *batch = queue_head;
        queue_head = NULL;
        pthread_mutex_unlock(&queue_lock);
        MDB_txn *txn = begin_write();
        uint64_t now = now_us();
        for (request_t *r = batch; r; r = r->next) {
            switch (r->kind) {
            case 0: insert(txn, &r->job); r->ok = 1; break;
            case 1: r->ok = claim_one(txn, &r->job, now); break;
            case 2: r->ok = complete(txn, r->job.id, now); break;
            }
        }
        commit(txn);
        pthread_mutex_lock(&queue_lock);
        for (request_t *r = batch; r; r = r->next) r->done = 1;
        pthread_cond_broadcast(&queue_done);
    }
    pthread_mutex_unlock(&queue_lock);
    return NULL;
}

static void submit(request_t *r) {
    r->done = 0;
    pthread_mutex_lock(&queue_lock);
    r->next = queue_head;
    queue_head = r;
    pthread_cond_signal(&queue_wake);
    while (!r->done) pthread_cond_wait(&queue_done, &queue_lock);
    pthread_mutex_unlock(&queue_lock);
}

/* ---- phases ---- */

/* noinline: scripts/instructions.sh counts each phase function (callgrind --toggle-collect) */
__attribute__((noinline)) static void phase_load(void) {
    double elapsed = 0;
    job_t *batch = malloc(sizeof(job_t) * 1000);
    for (int64_t start = 0; start < N; start += 1000) {
        int64_t end = start + 1000 < N ? start + 1000 : N;
        for (int64_t n = start; n < end; n++) make_job(n, load_state(n), &batch[n - start]);
        double t = mono();
        MDB_txn *txn = begin_write();
        for (int64_t n = start; n < end; n++) insert(txn, &batch[n - start]);
        commit(txn);
        elapsed += mono() - t;
    }
    free(batch);
    total = N;
    emit("load", N, elapsed, NULL, 0, NULL);
}

static void phase_insert_single(void) {
    int64_t count = scaled(10000);
    double *lat = malloc(sizeof(double) * (size_t)count), sum = 0;
    for (int64_t i = 0; i < count; i++) {
        job_t job;
        make_job(total + i, PENDING, &job);
        double t = mono();
        MDB_txn *txn = begin_write();
        insert(txn, &job);
        commit(txn);
        lat[i] = (mono() - t) * 1e6;
        sum += lat[i];
    }
    total += count;
    emit("insert-single", count, sum / 1e6, lat, count, NULL);
    free(lat);
}

typedef struct {
    int worker, kind;
    int64_t first, count, share;
    double *lat;
    int64_t done;
    uint8_t (*claimed)[16];
} worker_t;

static void *producer_main(void *arg) {
    worker_t *w = arg;
    request_t r;
    for (int64_t n = w->first + w->worker; n < w->first + w->count; n += 8) {
        make_job(n, PENDING, &r.job);
        r.kind = 0;
        double t = mono();
        submit(&r);
        w->lat[w->done++] = (mono() - t) * 1e6;
    }
    return NULL;
}

static void *claimer_main(void *arg) {
    worker_t *w = arg;
    request_t r;
    while (w->done < w->share) {
        r.kind = 1;
        submit(&r);
        if (!r.ok) fail("claim-concurrent found no ready job");
        r.kind = 2;
        submit(&r);
        if (!r.ok) fail("claim-concurrent: a claimed job was not running");
        memcpy(w->claimed[w->done++], r.job.id, 16);
    }
    return NULL;
}

static double run_workers(worker_t *workers, void *(*body)(void *)) {
    pthread_t writer, threads[8];
    writer_stop = 0;
    pthread_create(&writer, NULL, writer_main, NULL);
    double t = mono();
    for (int i = 0; i < 8; i++) pthread_create(&threads[i], NULL, body, &workers[i]);
    for (int i = 0; i < 8; i++) pthread_join(threads[i], NULL);
    double wall = mono() - t;
    pthread_mutex_lock(&queue_lock);
    writer_stop = 1;
    pthread_cond_signal(&queue_wake);
    pthread_mutex_unlock(&queue_lock);
    pthread_join(writer, NULL);
    return wall;
}

static void phase_insert_concurrent(void) {
    int64_t count = scaled(20000);
    worker_t workers[8];
    double *lat = malloc(sizeof(double) * (size_t)count);
    int64_t at = 0;
    for (int i = 0; i < 8; i++) {
        workers[i] = (worker_t){.worker = i, .first = total, .count = count, .lat = lat + at, .done = 0};
        for (int64_t n = total + i; n < total + count; n += 8) at++;
    }
    double wall = run_workers(workers, producer_main);
    total += count;
    emit("insert-concurrent", count, wall, lat, count, NULL);
    free(lat);
}

static void phase_get(void) {
    int64_t count = scaled(1000000);
    stream_t s = {1001, 0};
    uint8_t (*ids)[16] = malloc((size_t)count * 16);
    for (int64_t i = 0; i < count; i++) job_id(stream_below(&s, total), ids[i]);
    double *lat = malloc(sizeof(double) * (size_t)count), sum = 0;
    int64_t missing = 0;
    for (int64_t i = 0; i < count; i++) {
        job_t job;
        double t = mono();
        MDB_txn *txn = begin_read();
        int found = get_job(txn, ids[i], &job);
        end_read();
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
    int64_t count = scaled(10000), rows = 0;
    double *lat = malloc(sizeof(double) * (size_t)count), sum = 0;
    job_t *page = malloc(sizeof(job_t) * 100);
    for (int64_t q = 0; q < count; q++) {
        double t = mono();
        MDB_txn *txn = begin_read();
        MDB_cursor *cursor;
        CHECK(mdb_cursor_open(txn, db_state_created, &cursor));
        uint8_t prefix = PENDING;
        MDB_val k = val(&prefix, 1), v;
        int found = 0;
        int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
        while (rc == 0 && found < 100 && ((uint8_t *)k.mv_data)[0] == PENDING) {
            if (!get_job(txn, (uint8_t *)k.mv_data + 9, &page[found])) fail("index entry without record");
            found++;
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cursor);
        end_read();
        lat[q] = (mono() - t) * 1e6;
        sum += lat[q];
        rows += found;
    }
    MDB_txn *txn = begin_read();
    int64_t pending = read_counter(txn, PENDING);
    end_read();
    if (rows != count * (pending < 100 ? pending : 100)) fail("pending-oldest returned the wrong number of rows");
    emit("pending-oldest", count, sum / 1e6, lat, count, NULL);
    free(lat);
    free(page);
}

static void phase_count_by_state(void) {
    int64_t count = scaled(10000), sum = 0;
    double t = mono();
    for (int64_t q = 0; q < count; q++) {
        MDB_txn *txn = begin_read();
        for (int s = 0; s < STATES; s++) sum += read_counter(txn, s);
        end_read();
    }
    double elapsed = mono() - t;
    if (sum != count * total) fail("count-by-state sums differ");
    emit("count-by-state", count, elapsed, NULL, 0, NULL);
}

static void phase_time_range(void) {
    int64_t queries = scaled(1000), window = N / 100, rows = 0;
    stream_t s = {1002, 0};
    uint8_t (*ids)[16] = malloc((size_t)window * 16 + 16);
    double t = mono();
    for (int64_t q = 0; q < queries; q++) {
        int64_t first = stream_below(&s, N - window + 1);
        uint8_t start[8], end[8];
        put_be64(start, (uint64_t)created_at(first) ^ 0x8000000000000000ULL);
        put_be64(end, (uint64_t)created_at(first + window) ^ 0x8000000000000000ULL);
        MDB_txn *txn = begin_read();
        MDB_cursor *cursor;
        CHECK(mdb_cursor_open(txn, db_created, &cursor));
        MDB_val k = val(start, 8), v;
        int64_t found = 0;
        int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
        while (rc == 0 && memcmp(k.mv_data, end, 8) < 0) {
            if (found <= window) memcpy(ids[found], (uint8_t *)k.mv_data + 8, 16);
            found++;
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cursor);
        end_read();
        rows += found;
    }
    double elapsed = mono() - t;
    free(ids);
    char extra[96];
    snprintf(extra, sizeof extra, "\"queries\":%lld,\"rows_per_query\":%.1f", (long long)queries, (double)rows / (double)queries);
    emit("time-range", rows, elapsed, NULL, 0, extra);
}

static void phase_scan_filter(void) {
    int64_t found = 0;
    double t = mono();
    for (int q = 0; q < 10; q++) {
        MDB_txn *txn = begin_read();
        MDB_cursor *cursor;
        CHECK(mdb_cursor_open(txn, db_jobs, &cursor));
        MDB_val k, v;
        int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
        while (rc == 0) {
            if (((const header_t *)v.mv_data)->state == PENDING) found++;
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cursor);
        end_read();
    }
    double elapsed = mono() - t;
    MDB_txn *txn = begin_read();
    int64_t pending = read_counter(txn, PENDING);
    end_read();
    if (found != 10 * pending) fail("scan-filter found a different number of pending jobs than the counter");
    emit("scan-filter", 10, elapsed, NULL, 0, NULL);
}

/* Draws job numbers until one is in `state` (not timed). */
__attribute__((noinline)) /* scripts/instructions.sh leaves it out of the transition phases' counts */
static void random_job(int state, stream_t *s, uint8_t id[16]) {
    for (;;) {
        job_id(stream_below(s, total), id);
        job_t job;
        MDB_txn *txn = begin_read();
        int found = get_job(txn, id, &job);
        end_read();
        if (found && job.state == state) return;
    }
}

static void phase_transition(void) {
    int64_t count = scaled(20000);
    stream_t s = {1003, 0};
    double *lat = malloc(sizeof(double) * (size_t)count), sum = 0;
    for (int64_t i = 0; i < count; i++) {
        uint8_t id[16];
        random_job(PENDING, &s, id);
        double t = mono();
        MDB_txn *txn = begin_write();
        job_t job;
        if (!get_job(txn, id, &job) || job.state != PENDING) fail("transition: not pending");
        move(txn, &job, RUNNING, now_us());
        commit(txn);
        lat[i] = (mono() - t) * 1e6;
        sum += lat[i];
    }
    emit("transition", count, sum / 1e6, lat, count, NULL);
    free(lat);
}

static void phase_transition_batch(void) {
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
        MDB_txn *txn = begin_write();
        uint64_t now = now_us();
        for (int i = 0; i < size; i++) {
            job_t job;
            if (!get_job(txn, batch[i], &job) || job.state != RUNNING) fail("transition-batch: not running");
            move(txn, &job, SUCCEEDED, now);
        }
        commit(txn);
        elapsed += mono() - t;
        done += size;
    }
    emit("transition-batch", count, elapsed, NULL, 0, NULL);
}

/* No job was claimed twice, and every claimed one is succeeded. */
__attribute__((noinline)) /* scripts/instructions.sh leaves it out of the claim phases' counts */
static void check_claimed(uint8_t (*ids)[16], int64_t count, const char *phase) {
    check_claimed_once(ids, count, phase);
    MDB_txn *txn = begin_read();
    for (int64_t i = 0; i < count; i++) {
        job_t job;
        if (!get_job(txn, ids[i], &job) || job.state != SUCCEEDED) { fprintf(stderr, "%s: ", phase); fail("a claimed job is not succeeded"); }
    }
    end_read();
}

static void phase_claim(void) {
    int64_t count = scaled(20000);
    double *lat = malloc(sizeof(double) * (size_t)count), sum = 0;
    uint8_t (*ids)[16] = malloc((size_t)count * 16);
    for (int64_t i = 0; i < count; i++) {
        double t = mono();
        job_t job;
        MDB_txn *txn = begin_write();
        if (!claim_one(txn, &job, now_us())) fail("claim found no ready job");
        commit(txn);
        txn = begin_write();
        if (!complete(txn, job.id, now_us())) fail("claim: the claimed job was not running");
        commit(txn);
        lat[i] = (mono() - t) * 1e6;
        sum += lat[i];
        memcpy(ids[i], job.id, 16);
    }
    check_claimed(ids, count, "claim");
    emit("claim", count, sum / 1e6, lat, count, NULL);
    free(lat);
    free(ids);
}

static void phase_claim_batch(void) {
    int64_t count = scaled(40000), done = 0;
    uint8_t (*ids)[16] = malloc((size_t)count * 16);
    double t = mono();
    while (done < count) {
        int size = count - done < 100 ? (int)(count - done) : 100;
        MDB_txn *txn = begin_write();
        uint64_t now = now_us();
        for (int i = 0; i < size; i++) {
            job_t job;
            if (!claim_one(txn, &job, now)) fail("claim-batch ran out of ready jobs");
            memcpy(ids[done + i], job.id, 16);
        }
        commit(txn);
        txn = begin_write();
        now = now_us();
        for (int i = 0; i < size; i++)
            if (!complete(txn, ids[done + i], now)) fail("claim-batch: a claimed job was not running");
        commit(txn);
        done += size;
    }
    double elapsed = mono() - t;
    check_claimed(ids, count, "claim-batch");
    emit("claim-batch", count, elapsed, NULL, 0, NULL);
    free(ids);
}

static void phase_claim_concurrent(void) {
    int64_t count = scaled(20000);
    uint8_t (*ids)[16] = malloc((size_t)count * 16);
    worker_t workers[8];
    int64_t at = 0;
    for (int i = 0; i < 8; i++) {
        int64_t share = count / 8 + (i < count % 8 ? 1 : 0);
        workers[i] = (worker_t){.worker = i, .share = share, .claimed = ids + at, .done = 0};
        at += share;
    }
    double wall = run_workers(workers, claimer_main);
    check_claimed(ids, count, "claim-concurrent");
    emit("claim-concurrent", count, wall, NULL, 0, NULL);
    free(ids);
}

/* The counters equal a recount, and every index entry matches its record and back. */
static void final_checks(void) {
    int64_t recount[STATES] = {0}, indexed = 0, ready = 0;
    MDB_txn *txn = begin_read();
    MDB_cursor *cursor;
    MDB_val k, v;
    CHECK(mdb_cursor_open(txn, db_jobs, &cursor));
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        job_t job;
        decode(k.mv_data, &v, &job);
        recount[job.state]++;
        if (job.state == PENDING) ready++;
    }
    mdb_cursor_close(cursor);
    for (int s = 0; s < STATES; s++)
        if (read_counter(txn, s) != recount[s]) fail("a counter differs from the recount");
    CHECK(mdb_cursor_open(txn, db_state_created, &cursor));
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        job_t job;
        if (!get_job(txn, (uint8_t *)k.mv_data + 9, &job) || job.state != ((uint8_t *)k.mv_data)[0]) fail("a state index entry does not match its record");
        indexed++;
    }
    mdb_cursor_close(cursor);
    MDB_stat stat;
    CHECK(mdb_stat(txn, db_ready, &stat));
    if ((int64_t)stat.ms_entries != ready) fail("the ready index does not hold every pending job");
    CHECK(mdb_stat(txn, db_created, &stat));
    end_read();
    if (indexed != total || (int64_t)stat.ms_entries != total) fail("an index does not hold every job");
}

int main(int argc, char **argv) {
    const char *dir, *phases;
    store_name = "c-lmdb";
    parse_options(argc, argv, &dir, &phases);
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    struct stat st;
    if (stat(path, &st) == 0) { fprintf(stderr, "%s already holds a store\n", dir); return 2; }
    mkdir(dir, 0755);
    CHECK(mdb_env_create(&env));
    CHECK(mdb_env_set_mapsize(env, (size_t)1 << 32));
    CHECK(mdb_env_set_maxdbs(env, 8));
    CHECK(mdb_env_open(env, dir, MDB_NOTLS | (strcmp(durability, "relaxed") ? 0 : MDB_NOSYNC), 0644));
    MDB_txn *txn;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn));
    CHECK(mdb_dbi_open(txn, "jobs", MDB_CREATE, &db_jobs));
    CHECK(mdb_dbi_open(txn, "state_created", MDB_CREATE, &db_state_created));
    CHECK(mdb_dbi_open(txn, "created", MDB_CREATE, &db_created));
    CHECK(mdb_dbi_open(txn, "ready", MDB_CREATE, &db_ready));
    CHECK(mdb_dbi_open(txn, "counters", MDB_CREATE, &db_counters));
    CHECK(mdb_txn_commit(txn));
    CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &reader));
    mdb_txn_reset(reader);

    static void (*bodies[PHASES])(void) = {phase_insert_single, phase_insert_concurrent, phase_get, phase_pending_oldest,
                                           phase_count_by_state, phase_time_range, phase_scan_filter, phase_transition,
                                           phase_transition_batch, phase_claim, phase_claim_batch, phase_claim_concurrent};
    phase_load();
    for (int p = 0; p < PHASES; p++) {
        if (!listed(phases, phase_names[p])) continue;
        bodies[p]();
        mdb_env_sync(env, 1); /* untimed: a relaxed phase's writeback is not the next one's cost */
    }
    final_checks();
    if (stat(path, &st) == 0) emit_size((long long)st.st_blocks * 512);
    mdb_txn_abort(reader);
    mdb_env_close(env);
    return 0;
}
