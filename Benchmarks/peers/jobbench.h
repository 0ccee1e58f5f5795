/*
 * What every C peer of JobBench shares (docs/JOBBENCH.md): the generator (splitmix64, seed 42,
 * 40 draws per job), the job as a caller holds it, the clock, the JSON line per phase, the
 * scaling of counts, the selection of phases, and the check that no job was claimed twice.
 * Each peer includes it once (static functions: one translation unit per program).
 */
#ifndef JOBBENCH_H
#define JOBBENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

enum { WAITING, PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED, STATES };

static void fail(const char *message) {
    fprintf(stderr, "check failed: %s\n", message);
    exit(1);
}

/* ---- the generator ---- */

static const uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL;
static const int64_t BASE_US = 1700000000000000LL;

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static uint64_t draw(uint64_t seed, uint64_t k) { return mix(seed + (k + 1) * GOLDEN); }
static uint64_t job_draw(int64_t n, uint64_t d) { return draw(42, (uint64_t)n * 40 + d); }

/* A phase's own stream (seeds 1001 get, 1002 time-range, 1003 transition, 1004 transition-batch). */
typedef struct { uint64_t seed, k; } stream_t;
static uint64_t stream_next(stream_t *s) { return draw(s->seed, s->k++); }
static int64_t stream_below(stream_t *s, int64_t bound) { return (int64_t)(stream_next(s) % (uint64_t)bound); }

static int64_t created_at(int64_t n) { return BASE_US + 100 * n; }

static void put_be64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}
static inline uint64_t get_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* The UUIDv7-shaped id: 48-bit ms, version 7 + 12-bit counter, variant + 62 random bits. */
static void job_id(int64_t n, uint8_t id[16]) {
    int64_t micros = created_at(n);
    int64_t ms = micros / 1000;
    int64_t first_of_ms = (ms * 1000 - BASE_US + 99) / 100;
    uint64_t counter = (uint64_t)(n - first_of_ms);
    put_be64(id, ((uint64_t)ms << 16) | 0x7000 | (counter & 0xFFF));
    put_be64(id + 8, 0x8000000000000000ULL | (job_draw(n, 0) & 0x3FFFFFFFFFFFFFFFULL));
}

static int load_state(int64_t n) {
    uint64_t d = job_draw(n, 2) % 20;
    return d <= 1 ? PENDING : d == 2 ? RUNNING : d == 19 ? FAILED : SUCCEEDED;
}

/* ---- the job, as a caller holds it (every field copied out of the store) ---- */

#include "jobbench_job.h"

static void make_job(int64_t n, int state, job_t *job) {
    memset(job, 0, sizeof *job);
    job_id(n, job->id);
    int64_t created = created_at(n);
    job->state = (uint8_t)state;
    job->priority = (uint8_t)(job_draw(n, 1) % 10);
    job->name_len = (uint8_t)snprintf(job->name, sizeof job->name, "job-%08lld", (long long)n);
    job->queue_len = (uint8_t)snprintf(job->queue, sizeof job->queue, "q%llu", (unsigned long long)(job_draw(n, 3) % 8));
    job->tenant_len = (uint8_t)snprintf(job->tenant, sizeof job->tenant, "t%llu", (unsigned long long)(job_draw(n, 4) % 16));
    job->max_attempts = 25;
    job->payload_len = 256;
    job->created_at = job->updated_at = job->run_at = created;
    if (state == RUNNING) {
        job->lease_expires_at = created + 86400LL * 365 * 100 * 1000000;
        put_be64(job->lease_owner + 8, (uint64_t)n);
    }
    for (int i = 0; i < 32; i++) {
        uint64_t d = job_draw(n, 5 + (uint64_t)i);
        memcpy(job->payload + 8 * i, &d, 8); /* little-endian machine */
    }
}

/* ---- clocks ---- */

static uint64_t now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}
static double mono(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- output ---- */

static const char *store_name;
static const char *durability = "full";
static int64_t N = 1000000; /* the workload's N */
static int64_t total;       /* jobs numbered 0 ..< total exist */

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void emit(const char *phase, int64_t ops, double seconds, double *latencies, int64_t count, const char *extra) {
    printf("{\"store\":\"%s\",\"phase\":\"%s\",\"jobs\":%lld,\"durability\":\"%s\",\"ops\":%lld,\"seconds\":%.4f,\"ops_per_s\":%.0f",
           store_name, phase, (long long)N, durability, (long long)ops, seconds, seconds > 0 ? (double)ops / seconds : 0);
    if (latencies && count > 0) {
        qsort(latencies, (size_t)count, sizeof(double), compare_double);
        int64_t p99 = (int64_t)((double)count * 0.99);
        printf(",\"p50_us\":%.2f,\"p99_us\":%.2f", latencies[count / 2], latencies[p99 < count ? p99 : count - 1]);
    }
    if (extra) printf(",%s", extra);
    printf("}\n");
    fflush(stdout);
}

/* The size and rss lines. */
static void emit_size(long long bytes) {
    char extra[96];
    snprintf(extra, sizeof extra, "\"bytes\":%lld,\"bytes_per_job\":%.1f", bytes, (double)bytes / (double)total);
    emit("size", total, 0, NULL, 0, extra);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    snprintf(extra, sizeof extra, "\"bytes\":%lld", (long long)usage.ru_maxrss * 1024);
    emit("rss", 0, 0, NULL, 0, extra);
}

/* A count of the workload scaled to N. */
static int64_t scaled(int64_t count) {
    int64_t s = (int64_t)((double)count * (double)N / 1000000.0 + 0.5);
    return s < 1 ? 1 : s;
}

/* ---- options and phases ---- */

/* Parses --jobs, --durability, --dir, --phases; exits with the usage on anything else. */
static void parse_options(int argc, char **argv, const char **dir, const char **phases) {
    *dir = NULL;
    *phases = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--jobs")) N = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--durability")) durability = argv[i + 1];
        else if (!strcmp(argv[i], "--dir")) *dir = argv[i + 1];
        else if (!strcmp(argv[i], "--phases")) *phases = argv[i + 1];
        else { fprintf(stderr, "unknown option %s\n", argv[i]); exit(2); }
    }
    if (!*dir || N < 1000 || (strcmp(durability, "full") && strcmp(durability, "relaxed"))) {
        fprintf(stderr, "usage: %s --jobs N --durability full|relaxed --dir PATH [--phases a,b]\n", argv[0]);
        exit(2);
    }
}

/* The phases after load, in the workload's order. */
static const char *phase_names[] = {"insert-single", "insert-concurrent", "get", "pending-oldest", "count-by-state", "time-range",
                                    "scan-filter", "transition", "transition-batch", "claim", "claim-batch", "claim-concurrent"};
enum { PHASES = sizeof phase_names / sizeof *phase_names };

/* Whether `name` is in the comma-separated list (all phases when there is none). */
static int listed(const char *phases, const char *name) {
    if (!phases) return 1;
    size_t len = strlen(name);
    for (const char *at = phases; (at = strstr(at, name)); at += len)
        if ((at == phases || at[-1] == ',') && (at[len] == 0 || at[len] == ',')) return 1;
    return 0;
}

/* ---- claims ---- */

static uint8_t (*all_claimed)[16];
static int64_t all_claimed_count;
static int compare_id(const void *a, const void *b) { return memcmp(a, b, 16); }

/* Adds this phase's claimed ids to every earlier phase's; fails if one was claimed twice. */
static void check_claimed_once(uint8_t (*ids)[16], int64_t count, const char *phase) {
    all_claimed = realloc(all_claimed, (size_t)(all_claimed_count + count) * 16);
    memcpy(all_claimed[all_claimed_count], ids, (size_t)count * 16);
    all_claimed_count += count;
    qsort(all_claimed, (size_t)all_claimed_count, 16, compare_id);
    for (int64_t i = 1; i < all_claimed_count; i++)
        if (!memcmp(all_claimed[i - 1], all_claimed[i], 16)) { fprintf(stderr, "%s: ", phase); fail("a job was claimed twice"); }
}

#endif
