/* fuzz_plugin_table.c — libFuzzer target for the loader's validation of a
 * plugin table (lnet_plugin_table_check, internal to liblongnet, so
 * plugin_loader.c is compiled into this program).
 *
 * A module's entry point may return any table; the loader must refuse a bad
 * one with a reason before calling any slot. The fuzzed bytes give the ABI
 * version, the size, which slots are set, the name (any bytes, NUL-ended)
 * and the size of the reason buffer; the pointers themselves are sane (a
 * real module's table would not fault on reading). Properties: an accepted
 * table has the right version and size, a name of 1 to 32 characters from
 * [a-z0-9_] and every required slot; a refused one gets a reason. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int probe(int *n) { *n = 0; return 0; }
static void shutdown_(void) {}
static int describe(int i, lnet_plugin_device_desc *d) { (void)i; (void)d; return 0; }
static int open_(int i, const char *o, void **d) { (void)i; (void)o; (void)d; return 0; }
static void close_(void *d) { (void)d; }
static int alloc(void *d, size_t n, void **b) { (void)d; (void)n; (void)b; return 0; }
static int wrap(void *d, void *h, size_t n, void **b) { (void)d; (void)h; (void)n; (void)b; return 0; }
static void release(void *d, void *b) { (void)d; (void)b; }
static int put(void *d, void *b, size_t o, const void *s, size_t n)
{ (void)d; (void)b; (void)o; (void)s; (void)n; return 0; }
static int get(void *d, void *b, size_t o, void *s, size_t n)
{ (void)d; (void)b; (void)o; (void)s; (void)n; return 0; }
static int run(void *d, const lnet_segment_job *j) { (void)d; (void)j; return 0; }
static int sync_(void *d) { (void)d; return 0; }
static const char *last_error(void) { return ""; }

static void need(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_plugin_table: property violated: %s\n", what);
        abort();
    }
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[512];
    if (size < 11) {
        /* An entry point that returns no table. */
        need(lnet_plugin_table_check(NULL, why, sizeof why) != 0 && why[0],
             "no table is refused with a reason");
        return 0;
    }
    lnet_plugin t;
    memset(&t, 0, sizeof t);
    t.abi_version = le32(data);
    t.size = le32(data + 4);
    const unsigned mask = (unsigned)data[8] | (unsigned)data[9] << 8; /* 12 slots + name + descr */
    const size_t why_len = 1 + data[10] % sizeof why;
    const size_t name_len = size - 11;
    char *name = malloc(name_len + 1);
    need(name != NULL, "memory for the name");
    memcpy(name, data + 11, name_len);
    name[name_len] = '\0';
    t.name = mask & (1u << 12) ? NULL : name;
    t.description = mask & (1u << 13) ? NULL : "fuzzed";
    if (!(mask & 1u << 0)) t.probe = probe;
    if (!(mask & 1u << 1)) t.shutdown = shutdown_;
    if (!(mask & 1u << 2)) t.describe = describe;
    if (!(mask & 1u << 3)) t.open = open_;
    if (!(mask & 1u << 4)) t.close = close_;
    if (!(mask & 1u << 5)) t.buffer_alloc = alloc;
    if (!(mask & 1u << 6)) t.buffer_free = release;
    if (!(mask & 1u << 7)) t.buffer_write = put;
    if (!(mask & 1u << 8)) t.buffer_read = get;
    if (!(mask & 1u << 9)) t.run_segment = run;
    if (!(mask & 1u << 10)) t.synchronize = sync_;
    if (!(mask & 1u << 11)) t.last_error = last_error;
    if (mask & 1u << 14)
        t.buffer_wrap_host = wrap; /* optional: either way is acceptable */

    /* The reason buffer is poisoned past why_len: a write beyond the
     * length given would be caught below. */
    memset(why, 'X', sizeof why);
    int rc = lnet_plugin_table_check(&t, why, why_len);
    for (size_t i = why_len; i < sizeof why; i++)
        need(why[i] == 'X', "the reason stays within the buffer length given");
    if (rc == 0) {
        need(t.abi_version >= LNET_PLUGIN_ABI_MIN && t.abi_version <= LNET_PLUGIN_ABI_VERSION,
             "accepted ABI version is one this loader takes");
        /* Slots past LNET_PLUGIN_REQUIRED_SIZE are optional additions. */
        need(t.size >= LNET_PLUGIN_REQUIRED_SIZE, "accepted size covers the required slots");
        need(t.name && strlen(t.name) >= 1 && strlen(t.name) <= 32, "accepted name length");
        for (const char *c = t.name; *c; c++)
            need((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_',
                 "accepted name is [a-z0-9_]");
        need((mask & 0xfffu) == 0, "accepted table has every required slot");
    } else {
        need(rc == -1, "a refusal returns -1");
        need(memchr(why, '\0', why_len) != NULL, "the reason is NUL-terminated");
        need(why_len == 1 || why[0] != '\0', "a refusal gives a reason");
    }
    free(name);
    return 0;
}
