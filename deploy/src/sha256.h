/* SHA-256 (FIPS 180-4) for checking bundle files against manifest.json; internal, not installed. */
#ifndef EDGESKD_SHA256_H
#define EDGESKD_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef enum sha256_impl {
    SHA256_AUTO = 0,     /* SHA-NI when the CPU has it, else portable */
    SHA256_PORTABLE = 1, /* plain C, any CPU */
    SHA256_SHANI = 2     /* x86 SHA extensions; sha256_init falls back to portable when absent */
} sha256_impl;

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t total;     /* bytes fed so far */
    uint8_t block[64];
    size_t used;        /* bytes waiting in block */
    int shani;          /* 1: the SHA-NI block function */
} sha256_ctx;

/* 1 when this build and this CPU can run the SHA-NI path. */
int sha256_shani_available(void);
void sha256_init(sha256_ctx *c, sha256_impl impl);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t digest[32]);
/* Lower-case hex of the digest of `data` into out (65 bytes with the NUL). */
void sha256_hex(const void *data, size_t len, sha256_impl impl, char out[65]);
void sha256_to_hex(const uint8_t digest[32], char out[65]);

#endif
