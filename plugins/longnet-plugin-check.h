/* longnet-plugin-check.h — the checks every backend makes of a job before it
 * runs one, shared (header-only, part of the SDK) so that every plugin
 * refuses the same bad jobs with the same words, and a vendor need not
 * write them again. */
#ifndef LONGNET_PLUGIN_CHECK_H
#define LONGNET_PLUGIN_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "longnet-plugin.h"

/* The rows a job's buffers hold: q, out, lse from q_base (q_rows rows), k,
 * v from kv_base (kv_rows rows). A job without windows holds every row. */
typedef struct lnet_plugin_window {
    int64_t q_base, q_rows, kv_base, kv_rows;
} lnet_plugin_window;

static inline void lnet_plugin_job_window(const lnet_segment_job *job, lnet_plugin_window *w)
{
    if (LNET_PLUGIN_JOB_HAS_WINDOWS(job)) {
        w->q_base = job->q_base;
        w->q_rows = job->q_rows;
        w->kv_base = job->kv_base;
        w->kv_rows = job->kv_rows;
    } else {
        w->q_base = 0;
        w->q_rows = job->rows;
        w->kv_base = 0;
        w->kv_rows = job->rows;
    }
}

/* The message for a job whose element type the in-tree backends do not
 * run (float32 only), for supports() and run_segment alike. */
static inline const char *lnet_plugin_dtype_unsupported(const lnet_segment_job *job)
{
    switch (LNET_PLUGIN_JOB_DTYPE(job)) {
    case LNET_PLUGIN_DTYPE_F16: return "float16 jobs are not supported (this device runs float32 only)";
    case LNET_PLUGIN_DTYPE_BF16: return "bfloat16 jobs are not supported (this device runs float32 only)";
    default: return "jobs of an unknown element type are not supported (this device runs float32 only)";
    }
}

/* The bytes of a float32 tensor with these dims; -1 on overflow. */
static inline int lnet_plugin_tensor_bytes(const int64_t *dims, int ndims, size_t *bytes)
{
    size_t n = sizeof(float);
    for (int i = 0; i < ndims; i++) {
        if (dims[i] < 0 || (uint64_t)dims[i] > SIZE_MAX || (dims[i] && n > SIZE_MAX / (size_t)dims[i]))
            return -1;
        n *= (size_t)dims[i];
    }
    *bytes = n;
    return 0;
}

/* Checks the job's fields and windows (not its buffers, which only the
 * backend can measure) and gives the window and the bytes each buffer must
 * hold. Returns 0, or LNET_PLUGIN_ERR_INVALID with a message that starts
 * "<who> run_segment: " and names the bad value (LNET_PLUGIN_ERR_UNSUPPORTED
 * for an element type other than float32). */
static inline int lnet_plugin_job_check(const lnet_segment_job *job, const char *who,
                                        lnet_plugin_window *w, size_t *q_bytes,
                                        size_t *kv_bytes, size_t *lse_bytes, char *msg,
                                        size_t len)
{
#define LNET_CHECK_FAIL(...)                                           \
    do {                                                               \
        int used_ = snprintf(msg, len, "%s run_segment: ", who);       \
        if (used_ >= 0 && (size_t)used_ < len)                         \
            snprintf(msg + used_, len - (size_t)used_, __VA_ARGS__);   \
        return LNET_PLUGIN_ERR_INVALID;                                \
    } while (0)
    const size_t min_size = offsetof(lnet_segment_job, lse) + sizeof(void *);
    if (job->size < min_size)
        LNET_CHECK_FAIL("job size %zu is smaller than the %zu bytes of ABI %u", job->size,
                        min_size, LNET_PLUGIN_ABI_VERSION);
    const struct {
        const char *name;
        int64_t value;
    } dims[] = {
        {"batch", job->batch}, {"rows", job->rows}, {"heads", job->heads}, {"dim", job->dim}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].value < 1)
            LNET_CHECK_FAIL("%s = %lld (must be >= 1)", dims[i].name, (long long)dims[i].value);
    if (job->row_begin < 0 || job->row_begin > job->row_end || job->row_end > job->rows)
        LNET_CHECK_FAIL("row range [%lld, %lld) is not inside [0, %lld]",
                        (long long)job->row_begin, (long long)job->row_end, (long long)job->rows);
    if (job->segment < 1)
        LNET_CHECK_FAIL("segment = %lld (must be >= 1)", (long long)job->segment);
    if (job->dilation < 1 || job->dilation > job->segment)
        LNET_CHECK_FAIL("dilation = %lld is outside 1..segment (segment = %lld)",
                        (long long)job->dilation, (long long)job->segment);
    if (job->init != 0 && job->init != 1)
        LNET_CHECK_FAIL("init = %d (must be 0 or 1)", job->init);
    /* Overwriting is only right when the level selects every row; with a
     * dilation > 1 the unselected rows would keep stale values. */
    if (job->init && job->dilation != 1)
        LNET_CHECK_FAIL("init = 1 with dilation = %lld (init needs dilation 1)",
                        (long long)job->dilation);
    if (job->causal != 0 && job->causal != 1)
        LNET_CHECK_FAIL("causal = %d (must be 0 or 1)", job->causal);
    if (job->offsets != LNET_PLUGIN_OFFSETS_INTERLEAVED && job->offsets != LNET_PLUGIN_OFFSETS_GROUPED)
        LNET_CHECK_FAIL("offsets mode %d is neither interleaved (%d) nor grouped (%d)", job->offsets,
                        LNET_PLUGIN_OFFSETS_INTERLEAVED, LNET_PLUGIN_OFFSETS_GROUPED);
    if (!isfinite(job->scale))
        LNET_CHECK_FAIL("scale = %g is not finite", (double)job->scale);
    if (LNET_PLUGIN_JOB_DTYPE(job) != LNET_PLUGIN_DTYPE_F32) {
        snprintf(msg, len, "%s run_segment: %s", who, lnet_plugin_dtype_unsupported(job));
        return LNET_PLUGIN_ERR_UNSUPPORTED;
    }

    /* Row windows: they lie inside the sequence, and the row range lies
     * inside the query window. */
    lnet_plugin_job_window(job, w);
    if (LNET_PLUGIN_JOB_HAS_WINDOWS(job)) {
        if (w->q_base < 0 || w->q_rows > job->rows - w->q_base)
            LNET_CHECK_FAIL("query window of %lld rows from row %lld lies outside the %lld rows",
                            (long long)w->q_rows, (long long)w->q_base, (long long)job->rows);
        if (w->kv_base < 0 || w->kv_rows < 1 || w->kv_rows > job->rows - w->kv_base)
            LNET_CHECK_FAIL("key/value window of %lld rows from row %lld lies outside the %lld "
                            "rows (kv_rows must be >= 1)",
                            (long long)w->kv_rows, (long long)w->kv_base, (long long)job->rows);
        if (job->row_begin < job->row_end &&
            (job->row_begin < w->q_base || job->row_end > w->q_base + w->q_rows))
            LNET_CHECK_FAIL("rows [%lld, %lld) are not inside the query window [%lld, %lld)",
                            (long long)job->row_begin, (long long)job->row_end,
                            (long long)w->q_base, (long long)(w->q_base + w->q_rows));
    }
    const int64_t q_dims[4] = {job->batch, w->q_rows, job->heads, job->dim};
    const int64_t kv_dims[4] = {job->batch, w->kv_rows, job->heads, job->dim};
    if (lnet_plugin_tensor_bytes(q_dims, 4, q_bytes) || lnet_plugin_tensor_bytes(q_dims, 3, lse_bytes) ||
        lnet_plugin_tensor_bytes(kv_dims, 4, kv_bytes))
        LNET_CHECK_FAIL("shape [%lld, %lld, %lld, %lld] has more bytes than fit in memory",
                        (long long)job->batch, (long long)job->rows, (long long)job->heads,
                        (long long)job->dim);
    return 0;
#undef LNET_CHECK_FAIL
}

/* ------------------------------------------------- device descriptions */

/* The fields every ABI 2 description has. */
#define LNET_PLUGIN_DESC_MIN_SIZE (offsetof(lnet_plugin_device_desc, caps) + sizeof(unsigned))

/* For describe(): clears the fields the caller's size covers (keeping the
 * size) so that the plugin can fill them. Returns -1 when desc is NULL or
 * its size is smaller than ABI 2's fields (a broken caller). */
static inline int lnet_plugin_desc_clear(lnet_plugin_device_desc *desc)
{
    if (!desc || desc->size < LNET_PLUGIN_DESC_MIN_SIZE)
        return -1;
    size_t n = desc->size < sizeof *desc ? desc->size : sizeof *desc;
    size_t size = desc->size;
    memset(desc, 0, n);
    desc->size = size;
    return 0;
}

/* ------------------------------------------------------ device options */

/* One item of a device option string ("tile_q=32,fused=rows"), as the
 * plugin's open() receives it: the key and the value (after the first '=')
 * as spans of the string, not NUL-terminated. */
typedef struct lnet_plugin_option {
    const char *key;
    size_t key_len;
    const char *value; /* NULL when the item has no '=' */
    size_t value_len;
} lnet_plugin_option;

/* Reads the item at *p into opt and moves *p past it and its comma.
 * Returns 1 for an item, 0 at the end of the string (NULL is an empty
 * string). Empty items ("a=1,,b=2") are skipped. */
static inline int lnet_plugin_next_option(const char **p, lnet_plugin_option *opt)
{
    const char *s = *p ? *p : "";
    while (*s == ',')
        s++;
    if (!*s) {
        *p = s;
        return 0;
    }
    const char *end = strchr(s, ',');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    const char *eq = (const char *)memchr(s, '=', len);
    opt->key = s;
    opt->key_len = eq ? (size_t)(eq - s) : len;
    opt->value = eq ? eq + 1 : NULL;
    opt->value_len = eq ? len - opt->key_len - 1 : 0;
    *p = s + len;
    return 1;
}

/* 1 when the option's key is `name`. */
static inline int lnet_plugin_option_is(const lnet_plugin_option *opt, const char *name)
{
    return strlen(name) == opt->key_len && strncmp(opt->key, name, opt->key_len) == 0;
}

#endif /* LONGNET_PLUGIN_CHECK_H */
