/* fuzz_parse.c — libFuzzer target for the strings a user types on the
 * command line: level lists (lnet_config_parse_levels), offsets and
 * algorithm names, device specs and device lists with weights (through
 * lnet_context_find_device, lnet_attention_explain and, when the plan is
 * accepted, lnet_attention_forward on a small problem).
 *
 * Input: 4 bytes of shape and flags, then up to six '\n'-separated fields:
 *   segments, dilations, offsets name, algorithm name, device list, spec.
 * A missing field is passed as NULL. Properties checked besides "no crash,
 * no sanitizer report": a refusal leaves a message and leaves the levels
 * unchanged; accepted levels obey DESIGN §1; a multi-device forward gives
 * the one-device answer (within 1e-4).
 *
 * The context holds only the CPU backend, from CPU_PLUGIN_DIR (compiled in;
 * LONGNET_FUZZ_CPU_PLUGIN overrides it). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "longnet.h"

#ifndef CPU_PLUGIN_DIR
#define CPU_PLUGIN_DIR ""
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NFIELDS 6

static lnet_context *shared_context(void)
{
    static lnet_context *ctx;
    if (!ctx) {
        const char *dir = getenv("LONGNET_FUZZ_CPU_PLUGIN");
        lnet_context_options o = {.size = sizeof o,
                                  .plugin_path = dir && *dir ? dir : CPU_PLUGIN_DIR,
                                  .no_default_paths = 1};
        if (lnet_context_create(&o, &ctx) != LNET_OK || lnet_context_device_count(ctx) < 1) {
            fprintf(stderr, "fuzz_parse: no CPU device from %s: %s\n", o.plugin_path,
                    lnet_last_error());
            abort();
        }
    }
    return ctx;
}

static void need(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_parse: property violated: %s\n", what);
        abort();
    }
}

static lnet_tensor *filled(int ndim, const int64_t *shape, uint32_t seed)
{
    lnet_tensor *t = NULL;
    need(lnet_tensor_create(ndim, shape, &t) == LNET_OK, "a small tensor can be created");
    float *d = lnet_tensor_data(t);
    for (size_t i = 0; i < lnet_tensor_numel(t); i++) {
        seed = seed * 1664525u + 1013904223u;
        d[i] = (float)((double)(seed >> 8) / 8388608.0 - 1.0);
    }
    return t;
}

/* Runs the problem on `device` and on "cpu" alone and compares. */
static void forward_matches(lnet_context *ctx, const lnet_config *cfg, const int64_t shape[4],
                            const lnet_run_options *o, uint32_t seed)
{
    int64_t ls[3] = {shape[0], shape[2], shape[1]};
    lnet_tensor *q = filled(4, shape, seed), *k = filled(4, shape, seed + 1),
                *v = filled(4, shape, seed + 2);
    lnet_tensor *o1 = filled(4, shape, 0), *l1 = filled(3, ls, 0);
    lnet_tensor *o2 = filled(4, shape, 0), *l2 = filled(3, ls, 0);
    lnet_status st = lnet_attention_forward(ctx, cfg, q, k, v, o1, l1, o);
    if (st == LNET_OK) {
        lnet_run_options one = *o;
        one.device = "cpu";
        need(lnet_attention_forward(ctx, cfg, q, k, v, o2, l2, &one) == LNET_OK,
             "a configuration the device list ran also runs on one device");
        const float *a = lnet_tensor_cdata(o1), *b = lnet_tensor_cdata(o2);
        for (size_t i = 0; i < lnet_tensor_numel(o1); i++)
            need(fabsf(a[i] - b[i]) <= 1e-4f, "the device list gives the one-device output");
        a = lnet_tensor_cdata(l1);
        b = lnet_tensor_cdata(l2);
        for (size_t i = 0; i < lnet_tensor_numel(l1); i++)
            need(fabsf(a[i] - b[i]) <= 1e-4f, "the device list gives the one-device lse");
    } else {
        need(lnet_last_error()[0] != '\0', "a failed forward leaves a message");
    }
    lnet_tensor *all[] = {q, k, v, o1, l1, o2, l2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        lnet_tensor_free(all[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4 || size > 4096)
        return 0;
    const int64_t batch = 1 + data[3] % 2, rows = 1 + data[0] % 48, heads = 1 + data[1] % 4,
                  dim = 1 + data[2] % 8;
    const int causal = (data[3] >> 1) & 1;

    /* Split the rest into NUL-terminated fields. */
    char *text = malloc(size - 4 + 1);
    need(text != NULL, "memory for the input");
    memcpy(text, data + 4, size - 4);
    text[size - 4] = '\0';
    char *field[NFIELDS] = {0};
    char *p = text;
    for (int i = 0; i < NFIELDS && p; i++) {
        field[i] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = '\0';
    }

    lnet_context *ctx = shared_context();
    lnet_config *cfg = NULL;
    need(lnet_config_create(&cfg) == LNET_OK, "a configuration can be created");
    lnet_config_set_causal(cfg, causal);

    int parsed = lnet_config_parse_levels(cfg, field[0], field[1]) == LNET_OK;
    if (parsed) {
        int ones = 0;
        need(lnet_config_levels(cfg) >= 1 && lnet_config_levels(cfg) <= LNET_MAX_LEVELS,
             "1 to LNET_MAX_LEVELS levels");
        for (int i = 0; i < lnet_config_levels(cfg); i++) {
            int64_t w = lnet_config_segment(cfg, i), r = lnet_config_dilation(cfg, i);
            need(w >= 1 && r >= 1 && r <= w, "accepted levels have 1 <= r <= w");
            ones += r == 1;
        }
        (void)ones; /* "one level with r = 1" is validate's rule, checked below */
    } else {
        need(lnet_last_error()[0] != '\0', "a refused list leaves a message");
        need(lnet_config_levels(cfg) == 0, "a refused list leaves the levels unchanged");
        lnet_config_parse_levels(cfg, "8,16", "1,2");
    }

    lnet_offsets mode;
    if (lnet_offsets_parse(field[2], &mode) == LNET_OK)
        need(lnet_config_set_offsets(cfg, mode) == LNET_OK, "a parsed offsets mode is accepted");
    lnet_algorithm algo = LNET_ALGORITHM_AUTO;
    if (lnet_algorithm_parse(field[3], &algo) != LNET_OK)
        algo = LNET_ALGORITHM_AUTO;

    int index = -1;
    if (lnet_context_find_device(ctx, field[5], &index) == LNET_OK)
        need(index >= 0 && index < lnet_context_device_count(ctx), "a found device exists");
    else
        need(lnet_last_error()[0] != '\0', "an unknown device leaves a message");

    lnet_run_options o = {.size = sizeof o, .device = field[4], .algorithm = algo};
    char *plan = NULL;
    lnet_status st = lnet_attention_explain(ctx, cfg, batch, rows, heads, dim, &o, &plan);
    if (st == LNET_OK) {
        need(plan != NULL && strncmp(plan, "plan: ", 6) == 0, "explain gives a plan");
        lnet_free(plan);
        int64_t shape[4] = {batch, rows, heads, dim};
        forward_matches(ctx, cfg, shape, &o, (uint32_t)size);
    } else {
        need(plan == NULL && lnet_last_error()[0] != '\0', "a refused plan leaves a message");
    }
    lnet_config_free(cfg);
    free(text);
    return 0;
}
