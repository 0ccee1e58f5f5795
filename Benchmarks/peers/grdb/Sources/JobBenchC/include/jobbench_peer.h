/* The C peers' shared JobBench code (Benchmarks/peers/jobbench.h: the generator, clock, JSON
 * lines, scaling, phase selection and the claimed-once check), behind functions Swift can call:
 * the header's own functions and globals are static, one copy per C program. */
#include <stdint.h>

enum { JB_WAITING, JB_PENDING, JB_RUNNING, JB_SUCCEEDED, JB_FAILED, JB_CANCELLED };

#include "../../../../jobbench_job.h"

/* Parses the options (exits with the usage on a bad one) and names the store in every line. */
void jb_parse(int argc, char **argv, const char *store, const char **dir, const char **phases);
int64_t jb_N(void);
int64_t jb_total(void);
void jb_set_total(int64_t total);
int jb_relaxed(void);
void jb_make_job(int64_t n, int state, job_t *job);
void jb_job_id(int64_t n, uint8_t id[16]);
int jb_load_state(int64_t n);
int64_t jb_created_at(int64_t n);
int64_t jb_scaled(int64_t count);
int jb_listed(const char *phases, const char *name);
uint64_t jb_now_us(void);
double jb_mono(void);
/* The next draw below `bound` of the stream with `seed`, at position *k (advanced). */
int64_t jb_stream_below(uint64_t seed, uint64_t *k, int64_t bound);
void jb_put_be64(uint8_t *p, uint64_t v);
void jb_emit(const char *phase, int64_t ops, double seconds, double *latencies, int64_t count, const char *extra);
void jb_emit_size(long long bytes);
void jb_check_claimed_once(uint8_t *ids, int64_t count, const char *phase);
