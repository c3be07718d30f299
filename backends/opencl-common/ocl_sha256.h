/* ocl_sha256.h — SHA-256 (FIPS 180-4) for the program cache's keys and
 * checksums: strong enough that two different sources, options or drivers
 * never share a cache entry by accident. */
#ifndef LNET_OCL_SHA256_H
#define LNET_OCL_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct ocl_sha256_ctx {
    uint32_t h[8];
    uint64_t total;       /* bytes hashed so far */
    unsigned char block[64];
    size_t used;          /* bytes waiting in block */
} ocl_sha256_ctx;

void ocl_sha256_init(ocl_sha256_ctx *s);
void ocl_sha256_update(ocl_sha256_ctx *s, const void *data, size_t len);
void ocl_sha256_final(ocl_sha256_ctx *s, unsigned char digest[32]);
/* One call for a whole buffer. */
void ocl_sha256(const void *data, size_t len, unsigned char digest[32]);

#endif /* LNET_OCL_SHA256_H */
