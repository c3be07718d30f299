/* test_npy.c — lnet_npy_load / lnet_npy_save: round trips, the header
 * variants numpy and others write, every malformed file we must refuse, and
 * the atomicity of saving. Files are built byte by byte here, so the tests
 * need no numpy. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "longnet.h"

static char tmpdir[4096];

/* --------------------------------------------------------------- helpers */

static void setup(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/test_npy.XXXXXX", base);
    ck_assert_msg(mkdtemp(tmpdir) != NULL, "mkdtemp %s: %s", tmpdir, strerror(errno));
}

/* Removes tmpdir and everything in it (one level of subdirectories). */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[8192];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void teardown(void) { remove_tree(tmpdir); }

static const char *path_of(const char *name)
{
    static char p[8192];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static void write_bytes(const char *name, const void *data, size_t len)
{
    FILE *f = fopen(path_of(name), "wb");
    ck_assert_ptr_nonnull(f);
    if (len)
        ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static unsigned char *read_bytes(const char *name, size_t *len)
{
    FILE *f = fopen(path_of(name), "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Writes a .npy file: magic, version major.0, the header padded with spaces
 * and '\n' to a multiple of 64 (as numpy does), then `datalen` data bytes. */
static void write_npy(const char *name, int major, const char *header, const void *data,
                      size_t datalen)
{
    size_t hl = strlen(header);
    size_t lenbytes = major == 1 ? 2 : 4;
    size_t pre = 8 + lenbytes;
    size_t total = pre + hl + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = hl + pad + 1;
    size_t n = pre + hlen + datalen;
    unsigned char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    b[8] = (unsigned char)(hlen & 0xff);
    b[9] = (unsigned char)(hlen >> 8);
    if (lenbytes == 4) {
        b[10] = (unsigned char)(hlen >> 16);
        b[11] = (unsigned char)(hlen >> 24);
    }
    memcpy(b + pre, header, hl);
    memset(b + pre + hl, ' ', pad);
    b[pre + hlen - 1] = '\n';
    if (datalen)
        memcpy(b + pre + hlen, data, datalen);
    write_bytes(name, b, n);
    free(b);
}

/* Loads `name`, expecting `want` and a message that names the file and
 * contains `keyword`; *out must be NULL afterwards. */
static void expect_fail(const char *name, lnet_status want, const char *keyword)
{
    lnet_tensor *t = (lnet_tensor *)&t; /* not NULL: the loader must reset it */
    lnet_status st = lnet_npy_load(path_of(name), &t);
    const char *msg = lnet_last_error();
    ck_assert_msg(st == want, "%s: status %s, want %s (%s)", name, lnet_status_name(st),
                  lnet_status_name(want), msg);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(msg, name) != NULL, "message does not name %s: %s", name, msg);
    ck_assert_msg(strstr(msg, keyword) != NULL, "message lacks '%s': %s", keyword, msg);
}

static lnet_tensor *make_tensor(int ndim, const int64_t *shape, uint32_t seed)
{
    lnet_tensor *t;
    ck_assert_int_eq(lnet_tensor_create(ndim, shape, &t), LNET_OK);
    float *d = lnet_tensor_data(t);
    /* Arbitrary bit patterns (NaN payloads, -0, denormals, infinities):
     * saving and loading must copy bits, not values. */
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < lnet_tensor_numel(t); i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        memcpy(&d[i], &x, sizeof x);
    }
    return t;
}

/* Names in tmpdir; fails if any looks like a leftover temporary file. */
static int count_entries(void)
{
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        ck_assert_msg(strstr(e->d_name, ".tmp.") == NULL, "temporary file left: %s",
                      e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static const float f4_6[6] = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, 65504.0f};

/* ------------------------------------------------------------ round trip */

START_TEST(test_round_trip_shapes)
{
    static const int64_t shapes[][4] = {{7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 17}, {1}};
    static const int ndims[] = {1, 2, 3, 4, 1};
    for (size_t c = 0; c < sizeof ndims / sizeof ndims[0]; c++) {
        lnet_tensor *t = make_tensor(ndims[c], shapes[c], (uint32_t)c + 1), *u = NULL;
        ck_assert_int_eq(lnet_npy_save(path_of("rt.npy"), t), LNET_OK);
        ck_assert_msg(lnet_npy_load(path_of("rt.npy"), &u) == LNET_OK, "%s",
                      lnet_last_error());
        ck_assert_int_eq(lnet_tensor_ndim(u), ndims[c]);
        for (int d = 0; d < ndims[c]; d++)
            ck_assert_int_eq(lnet_tensor_dim(u, d), shapes[c][d]);
        ck_assert_uint_eq(lnet_tensor_numel(u), lnet_tensor_numel(t));
        ck_assert(memcmp(lnet_tensor_cdata(u), lnet_tensor_cdata(t),
                         lnet_tensor_numel(t) * sizeof(float)) == 0);
        lnet_tensor_free(t);
        lnet_tensor_free(u);
    }
    ck_assert_int_eq(count_entries(), 1);
}
END_TEST

/* The bytes are what numpy writes: version 1.0, numpy's dict text, padding
 * to 64 bytes, '\n', then the data; mode follows the umask. */
START_TEST(test_save_format)
{
    static const int64_t s2[2] = {2, 3}, s1[1] = {5};
    lnet_tensor *t;
    size_t n;
    ck_assert_int_eq(lnet_tensor_create(2, s2, &t), LNET_OK);
    memcpy(lnet_tensor_data(t), f4_6, sizeof f4_6);
    ck_assert_int_eq(lnet_npy_save(path_of("f.npy"), t), LNET_OK);
    lnet_tensor_free(t);
    unsigned char *b = read_bytes("f.npy", &n);
    ck_assert(memcmp(b, "\x93NUMPY\x01\x00", 8) == 0);
    size_t hlen = (size_t)b[8] | (size_t)b[9] << 8;
    ck_assert_uint_eq((10 + hlen) % 64, 0);
    ck_assert_uint_eq(n, 10 + hlen + sizeof f4_6);
    ck_assert_int_eq(b[10 + hlen - 1], '\n');
    static const char want[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    ck_assert(memcmp(b + 10, want, strlen(want)) == 0);
    for (size_t i = 10 + strlen(want); i < 10 + hlen - 1; i++)
        ck_assert_int_eq(b[i], ' ');
    ck_assert(memcmp(b + 10 + hlen, f4_6, sizeof f4_6) == 0);
    free(b);

    mode_t mask = umask(0);
    umask(mask);
    struct stat sb;
    ck_assert_int_eq(stat(path_of("f.npy"), &sb), 0);
    ck_assert_uint_eq(sb.st_mode & 0777, 0666 & ~mask);

    ck_assert_int_eq(lnet_tensor_create(1, s1, &t), LNET_OK);
    ck_assert_int_eq(lnet_npy_save(path_of("g.npy"), t), LNET_OK);
    lnet_tensor_free(t);
    b = read_bytes("g.npy", &n);
    static const char want1[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }";
    ck_assert(memcmp(b + 10, want1, strlen(want1)) == 0);
    free(b);
}
END_TEST

/* ----------------------------------------------------------- good inputs */

START_TEST(test_load_float64)
{
    /* FLT_MAX itself and a hair above it (which rounds to FLT_MAX) fit; NaN
     * and infinities are what the file says and pass as they are. */
    static const double d[6] = {1.5, -2.25, 3.4028235e38, 3.0e38, -0.0, -1.0 / 0.0};
    write_npy("f8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", d,
              sizeof d);
    lnet_tensor *t = NULL;
    ck_assert_msg(lnet_npy_load(path_of("f8.npy"), &t) == LNET_OK, "%s", lnet_last_error());
    ck_assert_int_eq(lnet_tensor_ndim(t), 2);
    ck_assert_int_eq(lnet_tensor_dim(t, 0), 3);
    ck_assert_int_eq(lnet_tensor_dim(t, 1), 2);
    const float *f = lnet_tensor_cdata(t);
    for (int i = 0; i < 6; i++) {
        float want = (float)d[i];
        ck_assert_msg(i == 5 || isfinite(f[i]), "element %d became %g", i, (double)f[i]);
        ck_assert_msg(memcmp(&f[i], &want, sizeof want) == 0, "element %d: %g != %g", i,
                      (double)f[i], (double)want);
    }
    lnet_tensor_free(t);
}
END_TEST

/* A finite float64 beyond float32's range would silently become an
 * infinity (then NaN rows, exit 0): refused with the file, the index and
 * the value. */
START_TEST(test_load_float64_out_of_range)
{
    static const double d[6] = {1.5, -2.25, 1e-3, 3.0e38, -0.0, -1e39};
    write_npy("big8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", d,
              sizeof d);
    expect_fail("big8.npy", LNET_ERR_FORMAT, "beyond float32");
    ck_assert_msg(strstr(lnet_last_error(), "[2, 1]") != NULL, "%s", lnet_last_error());
    ck_assert_msg(strstr(lnet_last_error(), "-1e+39") != NULL ||
                      strstr(lnet_last_error(), "-1.0000000000000000") != NULL ||
                      strstr(lnet_last_error(), "-9.99") != NULL,
                  "%s", lnet_last_error());
}
END_TEST

/* A FIFO with no writer: open() used to block forever. Refused at once
 * (Check's timeout fails the test if it hangs). */
START_TEST(test_load_fifo_refused)
{
    ck_assert_int_eq(mkfifo(path_of("pipe.npy"), 0600), 0);
    expect_fail("pipe.npy", LNET_ERR_IO, "FIFO");
    lnet_npy_info info = {.size = sizeof info};
    ck_assert_int_eq(lnet_npy_inspect(path_of("pipe.npy"), &info), LNET_ERR_IO);
}
END_TEST

/* lnet_npy_inspect reads the header only and checks what load checks. */
START_TEST(test_inspect)
{
    static const double d6[6] = {1, 2, 3, 4, 5, 6};
    write_npy("s.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", d6,
              sizeof d6);
    lnet_npy_info info = {.size = sizeof info};
    ck_assert_msg(lnet_npy_inspect(path_of("s.npy"), &info) == LNET_OK, "%s", lnet_last_error());
    ck_assert_int_eq(info.ndim, 2);
    ck_assert_int_eq(info.shape[0], 3);
    ck_assert_int_eq(info.shape[1], 2);
    ck_assert_uint_eq(info.itemsize, 8);
    ck_assert_uint_eq(info.numel, 6);
    write_npy("short.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f4_6,
              8);
    ck_assert_int_eq(lnet_npy_inspect(path_of("short.npy"), &info), LNET_ERR_FORMAT);
    ck_assert_msg(strstr(lnet_last_error(), "truncated") != NULL, "%s", lnet_last_error());
    lnet_npy_info small = {.size = 4};
    ck_assert_int_eq(lnet_npy_inspect(path_of("s.npy"), &small), LNET_ERR_INVALID);
}
END_TEST

static void expect_f4_6(const char *name, int ndim, const int64_t *shape)
{
    lnet_tensor *t = NULL;
    ck_assert_msg(lnet_npy_load(path_of(name), &t) == LNET_OK, "%s: %s", name,
                  lnet_last_error());
    ck_assert_int_eq(lnet_tensor_ndim(t), ndim);
    for (int d = 0; d < ndim; d++)
        ck_assert_int_eq(lnet_tensor_dim(t, d), shape[d]);
    ck_assert(memcmp(lnet_tensor_cdata(t), f4_6, sizeof f4_6) == 0);
    lnet_tensor_free(t);
}

START_TEST(test_load_versions)
{
    static const int64_t s[2] = {2, 3};
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    write_npy("v2.npy", 2, h, f4_6, sizeof f4_6);
    expect_f4_6("v2.npy", 2, s);
    write_npy("v3.npy", 3, h, f4_6, sizeof f4_6);
    expect_f4_6("v3.npy", 2, s);
}
END_TEST

START_TEST(test_load_header_variants)
{
    static const int64_t s23[2] = {2, 3}, s6[1] = {6}, s1123[4] = {1, 1, 2, 3};
    write_npy("order.npy", 1, "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
              f4_6, sizeof f4_6);
    expect_f4_6("order.npy", 2, s23);
    write_npy("dq.npy", 1, "{\"fortran_order\":False,\"descr\":\"<f4\",\"shape\":(6,),}", f4_6,
              sizeof f4_6);
    expect_f4_6("dq.npy", 1, s6);
    write_npy("ws.npy", 1,
              "  {\n\t'descr' :  '<f4' ,\n 'fortran_order'\t:\tFalse ,'shape':( 1 ,1,2 , 3 , ) "
              "}",
              f4_6, sizeof f4_6);
    expect_f4_6("ws.npy", 4, s1123);
    /* Python 2 numpy wrote longs with an 'L' suffix. */
    write_npy("py2.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
              f4_6, sizeof f4_6);
    expect_f4_6("py2.npy", 2, s23);
    /* No padding at all (hand-written files need not align). */
    static const unsigned char raw_pre[] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    const char *hdr = "{'descr':'<f4','fortran_order':False,'shape':(6,)}";
    size_t hl = strlen(hdr), n = 10 + hl + sizeof f4_6;
    unsigned char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    memcpy(b, raw_pre, 8);
    b[8] = (unsigned char)hl;
    b[9] = 0;
    memcpy(b + 10, hdr, hl);
    memcpy(b + 10 + hl, f4_6, sizeof f4_6);
    write_bytes("nopad.npy", b, n);
    free(b);
    expect_f4_6("nopad.npy", 1, s6);
}
END_TEST

/* ------------------------------------------------------------ bad inputs */

START_TEST(test_bad_magic)
{
    /* sizeof - 1: the text without its NUL (a fixed 34 read past its end). */
    static const char zip[] = "PK\x03\x04 this is a zip file, not npy";
    write_bytes("bad_magic.npy", zip, sizeof zip - 1);
    expect_fail("bad_magic.npy", LNET_ERR_FORMAT, "bad magic");
    write_bytes("empty.npy", "", 0);
    expect_fail("empty.npy", LNET_ERR_FORMAT, "magic");
    write_bytes("short.npy", "\x93NU", 3);
    expect_fail("short.npy", LNET_ERR_FORMAT, "magic");
}
END_TEST

START_TEST(test_bad_version)
{
    write_npy("v4.npy", 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", f4_6,
              sizeof f4_6);
    expect_fail("v4.npy", LNET_ERR_FORMAT, "version 4.0");
}
END_TEST

START_TEST(test_truncated_header)
{
    /* Only the magic and version. */
    write_bytes("trunc_a.npy", "\x93NUMPY\x01\x00", 8);
    expect_fail("trunc_a.npy", LNET_ERR_FORMAT, "truncated header");
    /* Header length says 118, only 20 header bytes follow. */
    unsigned char b[30] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 118, 0};
    memcpy(b + 10, "{'descr': '<f4', 'fo", 20);
    write_bytes("trunc_b.npy", b, sizeof b);
    expect_fail("trunc_b.npy", LNET_ERR_FORMAT, "truncated header");
    /* Version 2.0 with a 4-byte length cut short. */
    write_bytes("trunc_c.npy", "\x93NUMPY\x02\x00\x10\x00", 10);
    expect_fail("trunc_c.npy", LNET_ERR_FORMAT, "truncated header");
}
END_TEST

START_TEST(test_huge_header_length)
{
    unsigned char b[16] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0xff, 0xff, 0xff, 0x7f, '{'};
    write_bytes("bighdr.npy", b, sizeof b);
    expect_fail("bighdr.npy", LNET_ERR_FORMAT, "header length");
}
END_TEST

START_TEST(test_truncated_data)
{
    write_npy("tdata.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
              f4_6, 10);
    expect_fail("tdata.npy", LNET_ERR_FORMAT,
                "data is truncated: shape [2, 3] needs 24 bytes, file has 10");
    write_npy("tdata8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
              f4_6, 24);
    expect_fail("tdata8.npy", LNET_ERR_FORMAT, "needs 48 bytes, file has 24");
}
END_TEST

START_TEST(test_trailing_data)
{
    float d[7] = {0};
    write_npy("trail.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", d,
              sizeof d);
    expect_fail("trail.npy", LNET_ERR_FORMAT, "4 bytes of trailing data");
}
END_TEST

START_TEST(test_bad_dtypes)
{
    write_npy("f2.npy", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (6,), }", f4_6,
              12);
    expect_fail("f2.npy", LNET_ERR_FORMAT, "dtype '<f2' is not supported");
    write_npy("be.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", f4_6,
              sizeof f4_6);
    expect_fail("be.npy", LNET_ERR_FORMAT, "dtype '>f4'");
    write_npy("u1.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (6,), }", f4_6, 6);
    expect_fail("u1.npy", LNET_ERR_FORMAT, "dtype '|u1'");
    write_npy("rec.npy", 1,
              "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", f4_6,
              sizeof f4_6);
    expect_fail("rec.npy", LNET_ERR_FORMAT, "structured");
    write_npy("nat.npy", 1, "{'descr': 'f4', 'fortran_order': False, 'shape': (6,), }", f4_6,
              sizeof f4_6);
    expect_fail("nat.npy", LNET_ERR_FORMAT, "dtype 'f4'");
}
END_TEST

START_TEST(test_fortran_order)
{
    write_npy("fort.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f4_6,
              sizeof f4_6);
    expect_fail("fort.npy", LNET_ERR_FORMAT, "fortran_order");
}
END_TEST

START_TEST(test_bad_shapes)
{
    write_npy("scalar.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", f4_6,
              4);
    expect_fail("scalar.npy", LNET_ERR_FORMAT, "scalar shape ()");
    write_npy("zero.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 0), }", "",
              0);
    expect_fail("zero.npy", LNET_ERR_FORMAT, "zero dimension");
    write_npy("neg.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", f4_6,
              sizeof f4_6);
    expect_fail("neg.npy", LNET_ERR_FORMAT, "negative dimension");
    write_npy("rank9.npy", 1,
              "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,6), }", f4_6,
              sizeof f4_6);
    expect_fail("rank9.npy", LNET_ERR_FORMAT, "more than 8 dimensions");
    write_npy("notuple.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", f4_6,
              sizeof f4_6);
    expect_fail("notuple.npy", LNET_ERR_FORMAT, "not a tuple");
    write_npy("list.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': [6], }", f4_6,
              sizeof f4_6);
    expect_fail("list.npy", LNET_ERR_FORMAT, "shape");
}
END_TEST

/* Lying headers: refused before any allocation, whatever the count. */
START_TEST(test_huge_shapes)
{
    /* 2^62 float32 elements: 2^64 bytes overflow size_t. */
    write_npy("e62.npy", 1,
              "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }",
              f4_6, sizeof f4_6);
    expect_fail("e62.npy", LNET_ERR_OVERFLOW,
                "too large");
    /* 2^31 x 2^31 elements: the element count itself overflows on 32-bit,
     * the byte count on 64-bit. */
    write_npy("e62b.npy", 1,
              "{'descr': '<f8', 'fortran_order': False, 'shape': (2147483648, 2147483648), }",
              f4_6, sizeof f4_6);
    expect_fail("e62b.npy", LNET_ERR_OVERFLOW, "too large");
    /* 2^32 x 2^32 elements: the element count overflows everywhere. */
    write_npy("e64.npy", 1,
              "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
              f4_6, sizeof f4_6);
    expect_fail("e64.npy", LNET_ERR_OVERFLOW, "too large");
    /* A dimension beyond INT64_MAX, and one beyond UINT64_MAX. */
    write_npy("i64.npy", 1,
              "{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775808,), }",
              f4_6, sizeof f4_6);
    expect_fail("i64.npy", LNET_ERR_OVERFLOW, "too large");
    write_npy("u64.npy", 1,
              "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 99999999999999999999999), "
              "}",
              f4_6, sizeof f4_6);
    expect_fail("u64.npy", LNET_ERR_OVERFLOW, "99999999999999999999999");
    /* 2^40 elements fit size_t on 64-bit; the file is compared with them
     * before allocating, so the answer is FORMAT (truncated), not NOMEM. */
    if (sizeof(size_t) == 8) {
        write_npy("e40.npy", 1,
                  "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }",
                  f4_6, sizeof f4_6);
        expect_fail("e40.npy", LNET_ERR_FORMAT, "data is truncated");
    }
}
END_TEST

START_TEST(test_garbage_headers)
{
    static const struct {
        const char *name, *header, *keyword;
    } cases[] = {
        {"garbage.npy", "hello, world", "malformed header"},
        {"blank.npy", "", "malformed header"},
        {"unclosed.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), ",
         "malformed header"},
        {"noquote.npy", "{descr: '<f4', 'fortran_order': False, 'shape': (6,)}",
         "malformed header"},
        {"nocolon.npy", "{'descr' '<f4', 'fortran_order': False, 'shape': (6,)}",
         "malformed header"},
        {"badbool.npy", "{'descr': '<f4', 'fortran_order': false, 'shape': (6,)}",
         "True or False"},
        {"openstr.npy", "{'fortran_order': False, 'shape': (6,), 'descr': '<f4", "closing quote"},
        {"nodescr.npy", "{'fortran_order': False, 'shape': (6,)}", "no 'descr' key"},
        {"noshape.npy", "{'descr': '<f4', 'fortran_order': False}", "no 'shape' key"},
        {"extra.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}",
         "unexpected key 'x'"},
        {"dup.npy", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}",
         "twice"},
        {"after.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} junk",
         "malformed header"},
        {"twocomma.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (6,,)}",
         "malformed header"},
        {"float.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (6.0,)}",
         "malformed header"},
        {"nul.npy", "{'descr': '<f4', \x01'fortran_order': False, 'shape': (6,)}",
         "malformed header"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        write_npy(cases[c].name, 1, cases[c].header, f4_6, sizeof f4_6);
        expect_fail(cases[c].name, LNET_ERR_FORMAT, cases[c].keyword);
    }
}
END_TEST

START_TEST(test_missing_file)
{
    expect_fail("does_not_exist.npy", LNET_ERR_IO, "No such file");
    ck_assert_int_eq(mkdir(path_of("adir.npy"), 0755), 0);
    expect_fail("adir.npy", LNET_ERR_IO, "not a regular file");
}
END_TEST

START_TEST(test_invalid_arguments)
{
    lnet_tensor *t = (lnet_tensor *)&t;
    ck_assert_int_eq(lnet_npy_load(NULL, &t), LNET_ERR_INVALID);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(lnet_npy_load(path_of("x.npy"), NULL), LNET_ERR_INVALID);
    ck_assert_int_eq(lnet_npy_save(path_of("x.npy"), NULL), LNET_ERR_INVALID);
    static const int64_t s[1] = {3};
    ck_assert_int_eq(lnet_tensor_create(1, s, &t), LNET_OK);
    ck_assert_int_eq(lnet_npy_save(NULL, t), LNET_ERR_INVALID);
    lnet_tensor_free(t);
    ck_assert_int_eq(count_entries(), 0);
}
END_TEST

/* --------------------------------------------------------------- saving */

START_TEST(test_save_missing_dir)
{
    static const int64_t s[2] = {2, 3};
    lnet_tensor *t;
    ck_assert_int_eq(lnet_tensor_create(2, s, &t), LNET_OK);
    const char *p = path_of("no_such_dir/out.npy");
    ck_assert_int_eq(lnet_npy_save(p, t), LNET_ERR_IO);
    ck_assert_msg(strstr(lnet_last_error(), "no_such_dir/out.npy") != NULL, "%s",
                  lnet_last_error());
    ck_assert_msg(strstr(lnet_last_error(), "No such file") != NULL, "%s", lnet_last_error());
    lnet_tensor_free(t);
    ck_assert_int_ne(access(p, F_OK), 0);
    ck_assert_int_eq(count_entries(), 0);
}
END_TEST

START_TEST(test_save_replaces)
{
    static const int64_t s1[1] = {100}, s2[3] = {2, 2, 2};
    lnet_tensor *a = make_tensor(1, s1, 11), *b = make_tensor(3, s2, 12), *u;
    ck_assert_int_eq(lnet_npy_save(path_of("r.npy"), a), LNET_OK);
    ck_assert_int_eq(lnet_npy_save(path_of("r.npy"), b), LNET_OK);
    ck_assert_int_eq(lnet_npy_load(path_of("r.npy"), &u), LNET_OK);
    ck_assert_int_eq(lnet_tensor_ndim(u), 3);
    ck_assert_uint_eq(lnet_tensor_numel(u), 8);
    ck_assert(memcmp(lnet_tensor_cdata(u), lnet_tensor_cdata(b), 8 * sizeof(float)) == 0);
    lnet_tensor_free(a);
    lnet_tensor_free(b);
    lnet_tensor_free(u);
    ck_assert_int_eq(count_entries(), 1);
}
END_TEST

/* A directory is no output: refused before any temporary exists. */
START_TEST(test_save_refuses_directory)
{
    static const int64_t s[1] = {4};
    lnet_tensor *t = make_tensor(1, s, 3);
    ck_assert_int_eq(mkdir(path_of("target.npy"), 0755), 0);
    write_bytes("target.npy/keep", "x", 1);
    ck_assert_int_eq(lnet_npy_save(path_of("target.npy"), t), LNET_ERR_IO);
    ck_assert_msg(strstr(lnet_last_error(), "target.npy") != NULL, "%s", lnet_last_error());
    ck_assert_msg(strstr(lnet_last_error(), "directory") != NULL, "%s", lnet_last_error());
    struct stat sb;
    ck_assert_int_eq(stat(path_of("target.npy/keep"), &sb), 0);
    ck_assert_int_eq(count_entries(), 1);
    lnet_tensor_free(t);
}
END_TEST

/* The commit fails after the temporary is complete (the target became a
 * non-empty directory meanwhile, so rename() fails): the target is
 * untouched and freeing the output removes the temporary. */
START_TEST(test_save_fails_on_rename)
{
    static const int64_t s[1] = {4};
    lnet_tensor *t = make_tensor(1, s, 3);
    lnet_npy_output *o = NULL;
    ck_assert_int_eq(lnet_npy_output_create(path_of("target.npy"), &o), LNET_OK);
    const char *tmp = lnet_npy_output_temp_path(o);
    ck_assert_ptr_nonnull(tmp);
    ck_assert_int_eq(access(tmp, F_OK), 0);
    ck_assert_int_eq(lnet_npy_output_is_stream(o), 0);
    ck_assert_int_eq(lnet_npy_output_write(o, t), LNET_OK);
    ck_assert_int_eq(mkdir(path_of("target.npy"), 0755), 0);
    write_bytes("target.npy/keep", "x", 1);
    ck_assert_int_eq(lnet_npy_output_commit(o), LNET_ERR_IO);
    ck_assert_msg(strstr(lnet_last_error(), "rename") != NULL, "%s", lnet_last_error());
    char kept[8192];
    snprintf(kept, sizeof kept, "%s", tmp);
    ck_assert_int_eq(access(kept, F_OK), 0); /* until freed */
    lnet_npy_output_free(o);
    ck_assert_int_ne(access(kept, F_OK), 0);
    struct stat sb;
    ck_assert_int_eq(stat(path_of("target.npy/keep"), &sb), 0);
    ck_assert_int_eq(count_entries(), 1);
    lnet_tensor_free(t);
}
END_TEST

/* An output created and never committed leaves nothing behind, and an
 * existing target keeps its bytes. */
START_TEST(test_output_uncommitted)
{
    static const int64_t s[1] = {6};
    lnet_tensor *t = make_tensor(1, s, 4);
    ck_assert_int_eq(lnet_npy_save(path_of("old.npy"), t), LNET_OK);
    size_t n0;
    unsigned char *before = read_bytes("old.npy", &n0);
    lnet_tensor *u = make_tensor(1, s, 5);
    lnet_npy_output *o = NULL;
    ck_assert_int_eq(lnet_npy_output_create(path_of("old.npy"), &o), LNET_OK);
    ck_assert_int_eq(lnet_npy_output_write(o, u), LNET_OK);
    ck_assert_int_eq(lnet_npy_output_write(o, u), LNET_ERR_INVALID); /* once only */
    char kept[8192];
    snprintf(kept, sizeof kept, "%s", lnet_npy_output_temp_path(o));
    ck_assert_int_eq(access(kept, F_OK), 0);
    lnet_npy_output_free(o);
    ck_assert_int_ne(access(kept, F_OK), 0);
    ck_assert_int_eq(count_entries(), 1);
    size_t n1;
    unsigned char *after = read_bytes("old.npy", &n1);
    ck_assert(n0 == n1 && memcmp(before, after, n0) == 0);
    ck_assert_int_eq(lnet_npy_output_create(path_of("new.npy"), &o), LNET_OK);
    ck_assert_int_eq(lnet_npy_output_commit(o), LNET_ERR_INVALID); /* nothing written */
    lnet_npy_output_free(o);
    ck_assert_int_eq(count_entries(), 1);
    free(before);
    free(after);
    lnet_tensor_free(t);
    lnet_tensor_free(u);
}
END_TEST

/* A character device is written through, never replaced: as root, a
 * rename over /dev/null once replaced the machine's /dev/null. */
START_TEST(test_save_char_device)
{
    static const int64_t s[1] = {6};
    lnet_tensor *t = make_tensor(1, s, 6);
    struct stat before, after;
    ck_assert_int_eq(stat("/dev/null", &before), 0);
    ck_assert(S_ISCHR(before.st_mode));
    ck_assert_msg(lnet_npy_save("/dev/null", t) == LNET_OK, "%s", lnet_last_error());
    ck_assert_int_eq(stat("/dev/null", &after), 0);
    ck_assert(S_ISCHR(after.st_mode));
    ck_assert(before.st_rdev == after.st_rdev && before.st_ino == after.st_ino);
    /* A link to it: the link and the device both stay. */
    ck_assert_int_eq(symlink("/dev/null", path_of("null.npy")), 0);
    ck_assert_msg(lnet_npy_save(path_of("null.npy"), t) == LNET_OK, "%s", lnet_last_error());
    ck_assert_int_eq(lstat(path_of("null.npy"), &after), 0);
    ck_assert(S_ISLNK(after.st_mode));
    ck_assert_int_eq(stat("/dev/null", &after), 0);
    ck_assert(S_ISCHR(after.st_mode));
    /* A device that fails the write (ENOSPC) is an error, not a success. */
    ck_assert_int_eq(lnet_npy_save("/dev/full", t), LNET_ERR_IO);
    ck_assert_msg(strstr(lnet_last_error(), "/dev/full") != NULL, "%s", lnet_last_error());
    ck_assert_int_eq(stat("/dev/full", &after), 0);
    ck_assert(S_ISCHR(after.st_mode));
    lnet_tensor_free(t);
}
END_TEST

/* A FIFO: with no reader, refused at once (never waited on); with one, the
 * reader gets the file byte for byte, and the FIFO stays a FIFO. */
START_TEST(test_save_fifo)
{
    static const int64_t s[1] = {6};
    lnet_tensor *t = make_tensor(1, s, 7);
    ck_assert_int_eq(mkfifo(path_of("pipe.npy"), 0600), 0);
    ck_assert_int_eq(lnet_npy_save(path_of("pipe.npy"), t), LNET_ERR_IO);
    ck_assert_msg(strstr(lnet_last_error(), "no reader") != NULL, "%s", lnet_last_error());
    ck_assert_int_eq(lnet_npy_save(path_of("ref.npy"), t), LNET_OK);

    /* The reader opens first (non-blocking, so that it does not wait for
     * us), then the save writes; a child drains it into a file. */
    int rfd = open(path_of("pipe.npy"), O_RDONLY | O_NONBLOCK);
    ck_assert_int_ge(rfd, 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        fcntl(rfd, F_SETFL, 0);
        int out = open(path_of("got.npy"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        char buf[4096];
        ssize_t n;
        /* Waits for the writer, then reads to its end. */
        for (int seen = 0;;) {
            n = read(rfd, buf, sizeof buf);
            if (n > 0) {
                seen = 1;
                if (write(out, buf, (size_t)n) != n)
                    _exit(2);
            } else if (n == 0 && seen) {
                break;
            } else if (n == 0) {
                usleep(1000);
            } else {
                _exit(3);
            }
        }
        close(out);
        _exit(0);
    }
    lnet_status st = lnet_npy_save(path_of("pipe.npy"), t);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    close(rfd);
    ck_assert_msg(st == LNET_OK, "%s", lnet_last_error());
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    size_t n0, n1;
    unsigned char *want = read_bytes("ref.npy", &n0), *got = read_bytes("got.npy", &n1);
    ck_assert(n0 == n1 && memcmp(want, got, n0) == 0);
    struct stat sb;
    ck_assert_int_eq(lstat(path_of("pipe.npy"), &sb), 0);
    ck_assert(S_ISFIFO(sb.st_mode));
    free(want);
    free(got);
    lnet_tensor_free(t);
}
END_TEST

/* A symbolic link stays a link and its final target gets the new bytes:
 * absolute and relative links, a chain of two, a dangling link (its
 * target is created), and a loop (refused). */
START_TEST(test_save_symlink)
{
    static const int64_t s[1] = {6};
    lnet_tensor *t = make_tensor(1, s, 8);
    ck_assert_int_eq(mkdir(path_of("sub"), 0755), 0);
    write_bytes("sub/real.npy", "old", 3);
    ck_assert_int_eq(symlink("sub/real.npy", path_of("rel.npy")), 0);
    char rel[8192];
    snprintf(rel, sizeof rel, "%s", path_of("rel.npy"));
    ck_assert_int_eq(symlink(rel, path_of("chain.npy")), 0);
    ck_assert_msg(lnet_npy_save(path_of("chain.npy"), t) == LNET_OK, "%s", lnet_last_error());
    struct stat sb;
    ck_assert_int_eq(lstat(path_of("chain.npy"), &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
    ck_assert_int_eq(lstat(path_of("rel.npy"), &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
    lnet_tensor *u = NULL;
    ck_assert_int_eq(lnet_npy_load(path_of("sub/real.npy"), &u), LNET_OK);
    ck_assert(memcmp(lnet_tensor_cdata(u), lnet_tensor_cdata(t), sizeof(float) * 6) == 0);
    lnet_tensor_free(u);

    ck_assert_int_eq(symlink("sub/dangling-target.npy", path_of("dangling.npy")), 0);
    ck_assert_msg(lnet_npy_save(path_of("dangling.npy"), t) == LNET_OK, "%s", lnet_last_error());
    ck_assert_int_eq(lstat(path_of("sub/dangling-target.npy"), &sb), 0);
    ck_assert(S_ISREG(sb.st_mode));

    ck_assert_int_eq(symlink("loop2.npy", path_of("loop1.npy")), 0);
    ck_assert_int_eq(symlink("loop1.npy", path_of("loop2.npy")), 0);
    ck_assert_int_eq(lnet_npy_save(path_of("loop1.npy"), t), LNET_ERR_IO);
    ck_assert_msg(strstr(lnet_last_error(), "loop1.npy") != NULL, "%s", lnet_last_error());
    /* No temporary anywhere: sub/ holds just the two targets. */
    DIR *d = opendir(path_of("sub"));
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    ck_assert_int_eq(n, 2);
    lnet_tensor_free(t);
}
END_TEST

/* A replaced file keeps its mode (0600 came back 0644) and, for root, its
 * owner and group. */
START_TEST(test_save_keeps_mode_and_owner)
{
    static const int64_t s[1] = {6};
    lnet_tensor *t = make_tensor(1, s, 9);
    ck_assert_int_eq(lnet_npy_save(path_of("m.npy"), t), LNET_OK);
    ck_assert_int_eq(chmod(path_of("m.npy"), 0640), 0);
    int root = geteuid() == 0;
    if (root)
        ck_assert_int_eq(chown(path_of("m.npy"), 65534, 65534), 0);
    ck_assert_int_eq(lnet_npy_save(path_of("m.npy"), t), LNET_OK);
    struct stat sb;
    ck_assert_int_eq(stat(path_of("m.npy"), &sb), 0);
    ck_assert_uint_eq(sb.st_mode & 07777, 0640);
    if (root) {
        ck_assert_uint_eq(sb.st_uid, 65534);
        ck_assert_uint_eq(sb.st_gid, 65534);
    }
    ck_assert_int_eq(chmod(path_of("m.npy"), 0600), 0);
    ck_assert_int_eq(lnet_npy_save(path_of("m.npy"), t), LNET_OK);
    ck_assert_int_eq(stat(path_of("m.npy"), &sb), 0);
    ck_assert_uint_eq(sb.st_mode & 07777, 0600);
    lnet_tensor_free(t);
}
END_TEST

/* The save fails while writing (a file size limit makes write() fail with
 * EFBIG, also for root): the existing file keeps its old bytes and no
 * temporary file remains. */
START_TEST(test_save_fails_on_write_keeps_old)
{
    static const int64_t small[1] = {6}, big[2] = {64, 64};
    lnet_tensor *a, *b = make_tensor(2, big, 5);
    ck_assert_int_eq(lnet_tensor_create(1, small, &a), LNET_OK);
    memcpy(lnet_tensor_data(a), f4_6, sizeof f4_6);
    ck_assert_int_eq(lnet_npy_save(path_of("keep.npy"), a), LNET_OK);
    size_t n0;
    unsigned char *before = read_bytes("keep.npy", &n0);

    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 1024; /* < 16 KiB of data */
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    lnet_status st = lnet_npy_save(path_of("keep.npy"), b);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, oldsig);

    ck_assert_msg(st == LNET_ERR_IO, "%s: %s", lnet_status_name(st), lnet_last_error());
    ck_assert_msg(strstr(lnet_last_error(), "keep.npy") != NULL, "%s", lnet_last_error());
    ck_assert_msg(strstr(lnet_last_error(), "write failed") != NULL, "%s", lnet_last_error());
    size_t n1;
    unsigned char *after = read_bytes("keep.npy", &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert(memcmp(before, after, n0) == 0);
    ck_assert_int_eq(count_entries(), 1);
    expect_f4_6("keep.npy", 1, small);
    free(before);
    free(after);
    lnet_tensor_free(a);
    lnet_tensor_free(b);
}
END_TEST

START_TEST(test_save_relative_path)
{
    /* A path with no directory part: the temporary file goes to ".". */
    char cwd[4096];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(tmpdir), 0);
    static const int64_t s[1] = {6};
    lnet_tensor *t, *u;
    ck_assert_int_eq(lnet_tensor_create(1, s, &t), LNET_OK);
    memcpy(lnet_tensor_data(t), f4_6, sizeof f4_6);
    lnet_status st = lnet_npy_save("rel.npy", t);
    lnet_status st2 = lnet_npy_load("rel.npy", &u);
    ck_assert_int_eq(chdir(cwd), 0);
    ck_assert_int_eq(st, LNET_OK);
    ck_assert_int_eq(st2, LNET_OK);
    ck_assert(memcmp(lnet_tensor_cdata(u), f4_6, sizeof f4_6) == 0);
    lnet_tensor_free(t);
    lnet_tensor_free(u);
    ck_assert_int_eq(count_entries(), 1);
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *npy_suite(void)
{
    Suite *s = suite_create("npy");
    TCase *tc;

    tc = tcase_create("round_trip");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip_shapes);
    tcase_add_test(tc, test_save_format);
    suite_add_tcase(s, tc);

    tc = tcase_create("load_ok");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_load_float64);
    tcase_add_test(tc, test_inspect);
    tcase_add_test(tc, test_load_versions);
    tcase_add_test(tc, test_load_header_variants);
    suite_add_tcase(s, tc);

    tc = tcase_create("load_bad");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_bad_magic);
    tcase_add_test(tc, test_bad_version);
    tcase_add_test(tc, test_truncated_header);
    tcase_add_test(tc, test_huge_header_length);
    tcase_add_test(tc, test_truncated_data);
    tcase_add_test(tc, test_trailing_data);
    tcase_add_test(tc, test_bad_dtypes);
    tcase_add_test(tc, test_fortran_order);
    tcase_add_test(tc, test_bad_shapes);
    tcase_add_test(tc, test_huge_shapes);
    tcase_add_test(tc, test_garbage_headers);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_invalid_arguments);
    tcase_add_test(tc, test_load_float64_out_of_range);
    tcase_add_test(tc, test_load_fifo_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("save");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_save_missing_dir);
    tcase_add_test(tc, test_save_replaces);
    tcase_add_test(tc, test_save_refuses_directory);
    tcase_add_test(tc, test_save_fails_on_rename);
    tcase_add_test(tc, test_output_uncommitted);
    tcase_add_test(tc, test_save_char_device);
    tcase_add_test(tc, test_save_fifo);
    tcase_add_test(tc, test_save_symlink);
    tcase_add_test(tc, test_save_keeps_mode_and_owner);
    tcase_add_test(tc, test_save_fails_on_write_keeps_old);
    tcase_add_test(tc, test_save_relative_path);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(npy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
