/* The shared JobBench code for the GRDB peer: jobbench.h compiled once, here. */
#include "../../../jobbench.h"
#include "jobbench_peer.h"

void jb_parse(int argc, char **argv, const char *store, const char **dir, const char **phases) {
    store_name = store;
    parse_options(argc, argv, dir, phases);
}
int64_t jb_N(void) { return N; }
int64_t jb_total(void) { return total; }
void jb_set_total(int64_t value) { total = value; }
int jb_relaxed(void) { return strcmp(durability, "full") != 0; }
void jb_make_job(int64_t n, int state, job_t *job) { make_job(n, state, job); }
void jb_job_id(int64_t n, uint8_t id[16]) { job_id(n, id); }
int jb_load_state(int64_t n) { return load_state(n); }
int64_t jb_created_at(int64_t n) { return created_at(n); }
int64_t jb_scaled(int64_t count) { return scaled(count); }
int jb_listed(const char *phases, const char *name) { return listed(phases, name); }
uint64_t jb_now_us(void) { return now_us(); }
double jb_mono(void) { return mono(); }
int64_t jb_stream_below(uint64_t seed, uint64_t *k, int64_t bound) {
    stream_t s = {seed, *k};
    int64_t value = stream_below(&s, bound);
    *k = s.k;
    return value;
}
void jb_put_be64(uint8_t *p, uint64_t v) { put_be64(p, v); }
void jb_emit(const char *phase, int64_t ops, double seconds, double *latencies, int64_t count, const char *extra) {
    emit(phase, ops, seconds, latencies, count, extra);
}
void jb_emit_size(long long bytes) { emit_size(bytes); }
void jb_check_claimed_once(uint8_t *ids, int64_t count, const char *phase) { check_claimed_once((uint8_t(*)[16])ids, count, phase); }
