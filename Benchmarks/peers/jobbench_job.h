/* The job as a JobBench caller holds it (every field copied out of the store): shared by the C
 * peers (through jobbench.h) and the GRDB peer's C target. */
#ifndef JOBBENCH_JOB_H
#define JOBBENCH_JOB_H

#include <stdint.h>

typedef struct {
    uint8_t id[16];
    uint8_t state, priority, name_len, queue_len, tenant_len;
    uint16_t attempts, max_attempts, payload_len;
    int64_t created_at, updated_at, run_at, lease_expires_at;
    uint8_t lease_owner[16];
    char name[33], queue[65], tenant[65];
    uint8_t payload[256];
} job_t;

#endif
