// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as in iSCSI, ext4 and LevelDB.
#include "CChecksum.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif

// Slicing by 8: table[k][b] is the CRC of byte b followed by k zero bytes.
static uint32_t table[8][256];
static int use_sse42;

// The instruction has a latency of three cycles and a throughput of one: a buffer is checksummed
// as three interleaved streams of STRIDE bytes each, then the first stream's register is moved
// past the other two's bytes and combined with them (a CRC register is linear: the register after
// A then B is the register after A moved over len(B) zero bytes, xor B's register from zero).
// shift_long / shift_short: the register moved over LONG / SHORT zero bytes, a byte of the
// register at a time (shift[k][b]: byte b at position k).
#define LONG 256
#define SHORT 64
static uint32_t shift_long[4][256], shift_short[4][256];

static uint32_t zeros(uint32_t crc, size_t count) {
    while (count--) crc = table[0][crc & 0xFF] ^ (crc >> 8);
    return crc;
}

static void fill_shift(uint32_t shift[4][256], size_t count) {
    uint32_t column[32];  // where each register bit ends up
    for (int bit = 0; bit < 32; bit++) column[bit] = zeros(1u << bit, count);
    for (int k = 0; k < 4; k++) {
        for (uint32_t byte = 0; byte < 256; byte++) {
            uint32_t moved = 0;
            for (int bit = 0; bit < 8; bit++) if (byte & (1u << bit)) moved ^= column[8 * k + bit];
            shift[k][byte] = moved;
        }
    }
}

static inline uint32_t shifted(const uint32_t shift[4][256], uint32_t crc) {
    return shift[0][crc & 0xFF] ^ shift[1][(crc >> 8) & 0xFF] ^ shift[2][(crc >> 16) & 0xFF] ^ shift[3][crc >> 24];
}

// Filled before main (single-threaded), so readers need no synchronisation.
__attribute__((constructor)) static void jobstore_crc32c_init(void) {
    for (uint32_t byte = 0; byte < 256; byte++) {
        uint32_t crc = byte;
        for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
        table[0][byte] = crc;
    }
    for (uint32_t byte = 0; byte < 256; byte++) {
        for (int k = 1; k < 8; k++) table[k][byte] = (table[k - 1][byte] >> 8) ^ table[0][table[k - 1][byte] & 0xFF];
    }
    fill_shift(shift_long, LONG);
    fill_shift(shift_short, SHORT);
#if defined(__x86_64__)
    unsigned int eax, ebx, ecx, edx;
    use_sse42 = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_SSE4_2) != 0;
#endif
}

static uint32_t software(uint32_t crc, const unsigned char *p, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        word ^= crc;
        crc = table[7][word & 0xFF] ^ table[6][(word >> 8) & 0xFF] ^ table[5][(word >> 16) & 0xFF] ^
              table[4][(word >> 24) & 0xFF] ^ table[3][(word >> 32) & 0xFF] ^ table[2][(word >> 40) & 0xFF] ^
              table[1][(word >> 48) & 0xFF] ^ table[0][word >> 56];
        p += 8;
        n -= 8;
    }
#endif
    while (n--) crc = table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
// Three streams of `stride` bytes each from p, continuing `crc`; p and n move past them.
#define INTERLEAVED(stride, shift)                                             \
    while (n >= 3 * (stride)) {                                                \
        uint64_t one = 0, two = 0;                                             \
        for (const unsigned char *end = p + (stride); p < end; p += 8) {       \
            uint64_t a, b, c;                                                  \
            memcpy(&a, p, 8);                                                  \
            memcpy(&b, p + (stride), 8);                                       \
            memcpy(&c, p + 2 * (stride), 8);                                   \
            wide = _mm_crc32_u64(wide, a);                                     \
            one = _mm_crc32_u64(one, b);                                       \
            two = _mm_crc32_u64(two, c);                                       \
        }                                                                      \
        wide = shifted(shift, shifted(shift, (uint32_t)wide) ^ (uint32_t)one) ^ (uint32_t)two; \
        p += 2 * (stride);                                                     \
        n -= 3 * (stride);                                                     \
    }

__attribute__((target("sse4.2"))) static uint32_t hardware(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t wide = crc;
    INTERLEAVED(LONG, shift_long)
    INTERLEAVED(SHORT, shift_short)
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        wide = _mm_crc32_u64(wide, word);
        p += 8;
        n -= 8;
    }
    crc = (uint32_t)wide;
    while (n--) crc = _mm_crc32_u8(crc, *p++);
    return crc;
}
#endif

uint32_t jobstore_crc32c(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = bytes;
    crc = ~crc;
#if defined(__x86_64__)
    if (use_sse42) return ~hardware(crc, p, count);
#endif
    return ~software(crc, p, count);
}

uint32_t jobstore_crc32c_portable(uint32_t crc, const void *bytes, size_t count) {
    return ~software(~crc, bytes, count);
}
