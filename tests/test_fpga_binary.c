/* test_fpga_binary.c — the FPGA backend's precompiled binaries, run in
 * Intel's FPGA emulator: the emulator's own compiled program, saved with
 * clGetProgramInfo(CL_PROGRAM_BINARIES) (LONGNET_FPGA_SAVE_BINARY_DIR),
 * loaded back from LONGNET_FPGA_BINARY_DIR with clCreateProgramWithBinary
 * gives the same answer, bit for bit; a missing binary, one built for
 * other macros, one whose sidecar names another device and a corrupt one
 * are each refused with a message naming the file and the aoc command that
 * builds it. Skips (77) naming scripts/install-fpga-emulator when the
 * emulator is not installed. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fpga_test.h"
#include "longnet.h"
#include "multidev.h"
#include "opencl_test.h"

static char bdir[512];

/* A fresh context for each step: a device opened anew reads the binary
 * directory anew. Returns the run's status; the message in *msg. */
static lnet_status run_fpga(problem *p, lnet_tensor **out, lnet_tensor **lse, char *msg,
                            size_t len, char *name, size_t name_len)
{
    lnet_context *ctx = NULL;
    ck_assert_int_eq(lnet_context_create(NULL, &ctx), LNET_OK);
    int index;
    ck_assert_int_eq(lnet_context_find_device(ctx, "fpga:0", &index), LNET_OK);
    lnet_device_info d;
    ck_assert_int_eq(lnet_context_device(ctx, index, &d), LNET_OK);
    if (name)
        snprintf(name, name_len, "%s", d.name);
    lnet_status st = run(ctx, p, "fpga:0", LNET_ALGORITHM_AUTO, out, lse);
    snprintf(msg, len, "%s", st == LNET_OK ? "" : lnet_last_error());
    lnet_context_free(ctx);
    return st;
}

static void make_case(problem *p, int64_t D)
{
    uint64_t r = 77;
    make_problem(p, &r, 1, 40, 2, D);
    ck_assert_int_eq(lnet_config_parse_levels(p->cfg, "16,40", "1,2"), LNET_OK);
    lnet_config_set_causal(p->cfg, 1);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f && fwrite(data, 1, len, f) == len && fclose(f) == 0, "cannot write %s",
                  path);
}

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s was not written", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    ck_assert(n > 0);
    void *buf = malloc((size_t)n);
    ck_assert(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* The refusal names the file and the aoc command, and says why. */
static void check_refused(lnet_status st, const char *msg, const char *file, const char *why)
{
    ck_assert_msg(st != LNET_OK, "the run with %s did not fail", file);
    ck_assert_msg(strstr(msg, file) && strstr(msg, "aoc ") && strstr(msg, "-D HEAD_DIM=") &&
                      strstr(msg, why),
                  "the refusal does not name %s, the aoc command and '%s': %s", file, why, msg);
    printf("refused as expected: %.300s...\n", msg);
}

START_TEST(save_load_refuse)
{
    char aocx8[700], side8[720], aocx4[700], msg[4400], name[256];
    snprintf(aocx8, sizeof aocx8, "%s/longnet-fpga-d8-q16-k16.aocx", bdir);
    snprintf(side8, sizeof side8, "%s.device", aocx8);
    snprintf(aocx4, sizeof aocx4, "%s/longnet-fpga-d4-q16-k16.aocx", bdir);
    problem p8, p4;
    make_case(&p8, 8);
    make_case(&p4, 4);
    lnet_tensor *o_src, *l_src, *o_bin, *l_bin, *o, *l;

    /* Built from source, its binary saved. */
    setenv("LONGNET_FPGA_SAVE_BINARY_DIR", bdir, 1);
    ck_assert_msg(run_fpga(&p8, &o_src, &l_src, msg, sizeof msg, NULL, 0) == LNET_OK, "%s", msg);
    unsetenv("LONGNET_FPGA_SAVE_BINARY_DIR");
    size_t bin_len, side_len;
    unsigned char *bin = read_file(aocx8, &bin_len);
    char *side = read_file(side8, &side_len);
    printf("saved %s (%zu bytes) for %.*s", aocx8, bin_len, (int)side_len, side);

    /* Loaded back: the same answer, bit for bit; info lists it. */
    setenv("LONGNET_FPGA_BINARY_DIR", bdir, 1);
    ck_assert_msg(run_fpga(&p8, &o_bin, &l_bin, msg, sizeof msg, name, sizeof name) == LNET_OK,
                  "%s", msg);
    ck_assert_msg(strstr(name, "binaries: d8-q16-k16"), "describe does not list it: %s", name);
    ck_assert_msg(max_diff(o_src, o_bin) == 0 && max_diff(l_src, l_bin) == 0,
                  "the loaded binary answers differently: out %g, lse %g",
                  max_diff(o_src, o_bin), max_diff(l_src, l_bin));
    lnet_tensor *o_ref, *l_ref;
    lnet_context *cctx = NULL;
    ck_assert_int_eq(lnet_context_create(NULL, &cctx), LNET_OK);
    ck_assert_int_eq(run(cctx, &p8, "cpu", LNET_ALGORITHM_AUTO, &o_ref, &l_ref), LNET_OK);
    lnet_context_free(cctx);
    ck_assert_msg(max_diff(o_ref, o_bin) <= 1e-5 && max_diff(l_ref, l_bin) <= 1e-5,
                  "the binary's answer is not the CPU's: out %g, lse %g", max_diff(o_ref, o_bin),
                  max_diff(l_ref, l_bin));

    /* Missing: no binary for D = 4. */
    check_refused(run_fpga(&p4, &o, &l, msg, sizeof msg, NULL, 0), msg, aocx4,
                  "no binary could be read");
    lnet_tensor_free(o);
    lnet_tensor_free(l);

    /* Built for other macros: D = 8's binary under D = 4's name. */
    write_file(aocx4, bin, bin_len);
    check_refused(run_fpga(&p4, &o, &l, msg, sizeof msg, NULL, 0), msg, aocx4, "other macros");
    lnet_tensor_free(o);
    lnet_tensor_free(l);

    /* Its sidecar names another device. */
    static const char other[] = "Some Other FPGA Board\n";
    write_file(side8, other, sizeof other - 1);
    check_refused(run_fpga(&p8, &o, &l, msg, sizeof msg, NULL, 0), msg, aocx8,
                  "Some Other FPGA Board");
    lnet_tensor_free(o);
    lnet_tensor_free(l);
    write_file(side8, side, side_len);

    /* Corrupt: the binary's bytes garbled. */
    unsigned char *bad = malloc(bin_len);
    ck_assert(bad);
    for (size_t i = 0; i < bin_len; i++)
        bad[i] = (unsigned char)(bin[i] ^ 0x5a);
    write_file(aocx8, bad, bin_len);
    check_refused(run_fpga(&p8, &o, &l, msg, sizeof msg, NULL, 0), msg, aocx8,
                  "the driver refuses it");
    lnet_tensor_free(o);
    lnet_tensor_free(l);
    unsetenv("LONGNET_FPGA_BINARY_DIR");

    free(bad);
    free(bin);
    free(side);
    lnet_tensor_free(o_src);
    lnet_tensor_free(l_src);
    lnet_tensor_free(o_bin);
    lnet_tensor_free(l_bin);
    lnet_tensor_free(o_ref);
    lnet_tensor_free(l_ref);
    free_problem(&p8);
    free_problem(&p4);
}
END_TEST

int main(int argc, char **argv)
{
    int st = fpga_test_start(argc, argv);
    if (st)
        return st;
    char cache[512];
    if (scratch_dir_make("longnet-fpga-cache", cache, sizeof cache))
        return 1;
    if (scratch_dir_make("longnet-fpga-binaries", bdir, sizeof bdir)) {
        scratch_dir_remove(cache);
        return 1;
    }
    setenv("LONGNET_CACHE_DIR", cache, 1);
    unsetenv("LONGNET_FPGA_BINARY_DIR");
    Suite *s = suite_create("fpga-binary");
    TCase *tc = tcase_create("emulator");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, save_load_refuse);
    suite_add_tcase(s, tc);
    int failed = opencl_run_suite(s);
    scratch_dir_remove(bdir);
    scratch_dir_remove(cache);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
