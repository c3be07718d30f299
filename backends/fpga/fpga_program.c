#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* fpga_program.c — the program of a configuration (D, tile_q, tile_k).
 *
 * A board runs bitstreams compiled offline for hours, so the plugin loads
 * one from LONGNET_FPGA_BINARY_DIR with clCreateProgramWithBinary: the file
 * longnet-fpga-d<D>-q<TQ>-k<TK>.aocx names the build macros, an optional
 * sidecar <file>.device the device it was built for. Refused, each with a
 * message naming the file and the exact aoc command that builds it: a
 * missing file, a sidecar naming another device, a file the driver does
 * not load (corrupt, or for another board), and one built for other macros
 * (the kernels' names carry the macros, so it lacks the kernels asked
 * for). Intel's emulator, with no binary directory set, builds the very
 * same sources at run time (through the on-disk cache of
 * opencl-common/ocl_build.c); LONGNET_FPGA_SAVE_BINARY_DIR then keeps the
 * binary it compiled (CL_PROGRAM_BINARIES) under the name above, with its
 * sidecar, so that the loading path can be run without a board. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fpga_backend.h"

#define FPGA_BINARY_FMT "longnet-fpga-d%d-q%d-k%d.aocx"
/* A bitstream is tens of MB; past this a file is not one. */
#define FPGA_MAX_BINARY ((long)1 << 31)

static int fpga_name(const fpga_config *cfg, const char *dir, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/" FPGA_BINARY_FMT, dir, cfg->dim, cfg->tile_q, cfg->tile_k);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int fpga_binary_path(const fpga_config *cfg, char *buf, size_t len)
{
    const char *dir = getenv("LONGNET_FPGA_BINARY_DIR");
    if (!dir || !dir[0])
        return -1;
    return fpga_name(cfg, dir, buf, len);
}

void fpga_binaries_found(char *buf, size_t len)
{
    buf[0] = '\0';
    const char *dir = getenv("LONGNET_FPGA_BINARY_DIR");
    DIR *dp = dir && dir[0] ? opendir(dir) : NULL;
    if (!dp)
        return;
    size_t used = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        int d, q, k, n = 0;
        if (sscanf(e->d_name, FPGA_BINARY_FMT "%n", &d, &q, &k, &n) != 3 || e->d_name[n])
            continue;
        int w = snprintf(buf + used, len - used, "%sd%d-q%d-k%d", used ? " " : "", d, q, k);
        if (w < 0 || (size_t)w >= len - used) {
            buf[used] = '\0';
            break;
        }
        used += (size_t)w;
    }
    closedir(dp);
}

/* The command that builds the binary of `cfg` into `path`. */
static void fpga_aoc_command(const fpga_device *dev, const fpga_config *cfg, const char *path,
                             char *buf, size_t len)
{
    snprintf(buf, len,
             "cat kernels/dilated_geometry.cl kernels/fpga/dilated_attention_fpga.cl > "
             "longnet-fpga.cl && aoc %s -D HEAD_DIM=%d -D TILE_Q=%d -D TILE_K=%d longnet-fpga.cl "
             "-o %s (backends/fpga/README.md)",
             dev->emulated ? "-march=emulator" : "-board=<board>", cfg->dim, cfg->tile_q,
             cfg->tile_k, path);
}

static int fpga_refuse(const fpga_device *dev, const fpga_config *cfg, const char *path,
                       const char *why)
{
    char cmd[1024];
    fpga_aoc_command(dev, cfg, path, cmd, sizeof cmd);
    return ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                    "fpga: %s for D=%d, tile_q=%d, tile_k=%d on %s: %s; build it with: %s",
                    path, cfg->dim, cfg->tile_q, cfg->tile_k, dev->info.device_name, why, cmd);
}

/* The whole file in a malloc'd buffer; -1 with errno when unreadable. */
static int fpga_read_file(const char *path, unsigned char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    unsigned char *buf = n >= 0 && n < FPGA_MAX_BINARY ? malloc(n ? (size_t)n : 1) : NULL;
    int ok = buf && fseek(f, 0, SEEK_SET) == 0 && fread(buf, 1, (size_t)n, f) == (size_t)n;
    int saved = errno;
    fclose(f);
    if (!ok) {
        free(buf);
        errno = saved ? saved : EIO;
        return -1;
    }
    *data = buf;
    *len = (size_t)n;
    return 0;
}

static void fpga_build_options(const fpga_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len, "-D HEAD_DIM=%d -D TILE_Q=%d -D TILE_K=%d", cfg->dim, cfg->tile_q,
             cfg->tile_k);
}

/* The binary at `path`, checked against its sidecar and loaded. */
static int fpga_load_binary(fpga_device *dev, const fpga_config *cfg, const char *path,
                            cl_program *out)
{
    char side[4200], why[256];
    unsigned char *bin = NULL, *want = NULL;
    size_t len = 0, want_len = 0;
    if (fpga_read_file(path, &bin, &len)) {
        snprintf(why, sizeof why, "no binary could be read (%s)", strerror(errno));
        return fpga_refuse(dev, cfg, path, why);
    }
    /* The sidecar, when there is one, names the device the binary is for. */
    snprintf(side, sizeof side, "%s.device", path);
    if (fpga_read_file(side, &want, &want_len) == 0) {
        while (want_len && (want[want_len - 1] == '\n' || want[want_len - 1] == '\r'))
            want_len--;
        int same = want_len == strlen(dev->info.device_name) &&
                   memcmp(want, dev->info.device_name, want_len) == 0;
        if (!same) {
            snprintf(why, sizeof why, "its sidecar %.60s.device says it was built for '%.*s'",
                     strrchr(path, '/') ? strrchr(path, '/') + 1 : path,
                     (int)(want_len < 80 ? want_len : 80), (const char *)want);
            free(want);
            free(bin);
            return fpga_refuse(dev, cfg, path, why);
        }
        free(want);
    }
    cl_int err, bin_status = CL_SUCCESS;
    const unsigned char *p = bin;
    cl_program prog =
        clCreateProgramWithBinary(dev->context, 1, &dev->info.id, &len, &p, &bin_status, &err);
    free(bin);
    if (err == CL_SUCCESS && bin_status != CL_SUCCESS)
        err = bin_status;
    char options[128];
    fpga_build_options(cfg, options, sizeof options);
    if (err == CL_SUCCESS)
        err = clBuildProgram(prog, 1, &dev->info.id, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        if (prog)
            clReleaseProgram(prog);
        snprintf(why, sizeof why,
                 "the driver refuses it (%s): corrupt, or built for another board",
                 ocl_error_name(err));
        return fpga_refuse(dev, cfg, path, why);
    }
    *out = prog;
    return LNET_PLUGIN_OK;
}

/* Keeps the emulator's compiled binary and its sidecar in `dir`. */
static int fpga_save_binary(const fpga_device *dev, const fpga_config *cfg, cl_program prog,
                            const char *dir)
{
    char path[4096], side[4200];
    unsigned char *bin = NULL;
    size_t len = 0;
    if (fpga_name(cfg, dir, path, sizeof path))
        return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                        "fpga: LONGNET_FPGA_SAVE_BINARY_DIR is too long (%zu characters)",
                        strlen(dir));
    if (ocl_program_binary(prog, &bin, &len))
        return ocl_fail(LNET_PLUGIN_ERR_DEVICE,
                        "fpga: %s gives no binary of its program (CL_PROGRAM_BINARIES) to save "
                        "as %s", dev->info.device_name, path);
    snprintf(side, sizeof side, "%s.device", path);
    FILE *f = fopen(path, "wb"), *g = f ? fopen(side, "w") : NULL;
    int ok = f && g && fwrite(bin, 1, len, f) == len && fprintf(g, "%s\n", dev->info.device_name) > 0;
    int saved = errno;
    free(bin);
    if (g && fclose(g) != 0)
        ok = 0;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "fpga: cannot save the binary as %s: %s", path,
                        strerror(saved ? saved : EIO));
    return LNET_PLUGIN_OK;
}

static int fpga_build_from_source(fpga_device *dev, const fpga_config *cfg, cl_program *out)
{
    static const char *const src[] = {ocl_src_dilated_geometry, ocl_src_dilated_attention_fpga};
    char options[128];
    fpga_build_options(cfg, options, sizeof options);
    int st = ocl_build_cached(dev->context, &dev->info, "longnet fpga program cache v1", src, 2,
                              options, out);
    if (st)
        return st;
    const char *save = getenv("LONGNET_FPGA_SAVE_BINARY_DIR");
    if (save && save[0] && (st = fpga_save_binary(dev, cfg, *out, save))) {
        clReleaseProgram(*out);
        *out = NULL;
    }
    return st;
}

static void fpga_program_free(fpga_program *p)
{
    cl_kernel k[] = {p->reader, p->compute, p->writer};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (k[i])
            clReleaseKernel(k[i]);
    if (p->program)
        clReleaseProgram(p->program);
    free(p);
}

int fpga_get_program(fpga_device *dev, const fpga_config *cfg, fpga_program **out)
{
    for (fpga_program *p = dev->programs; p; p = p->next)
        if (p->cfg.dim == cfg->dim && p->cfg.tile_q == cfg->tile_q &&
            p->cfg.tile_k == cfg->tile_k) {
            *out = p;
            return LNET_PLUGIN_OK;
        }
    char path[4096];
    const int have_dir = fpga_binary_path(cfg, path, sizeof path) == 0;
    const char *dir = getenv("LONGNET_FPGA_BINARY_DIR");
    if (!have_dir && dir && dir[0])
        return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                        "fpga: LONGNET_FPGA_BINARY_DIR is too long (%zu characters)", strlen(dir));
    if (!have_dir && !dev->emulated) {
        fpga_config c = *cfg;
        snprintf(path, sizeof path, "$LONGNET_FPGA_BINARY_DIR/" FPGA_BINARY_FMT, c.dim, c.tile_q,
                 c.tile_k);
        return fpga_refuse(dev, cfg, path,
                           "LONGNET_FPGA_BINARY_DIR is not set (a board runs binaries compiled "
                           "offline)");
    }
    fpga_program *p = calloc(1, sizeof *p);
    if (!p)
        return ocl_fail(LNET_PLUGIN_ERR_NOMEM, "fpga: out of memory allocating %zu bytes",
                        sizeof *p);
    p->cfg = *cfg;
    int st = have_dir ? fpga_load_binary(dev, cfg, path, &p->program)
                      : fpga_build_from_source(dev, cfg, &p->program);
    if (st) {
        free(p);
        return st;
    }
    const char *stage[] = {"reader", "compute", "writer"};
    cl_kernel *k[] = {&p->reader, &p->compute, &p->writer};
    for (int i = 0; i < 3; i++) {
        char name[96];
        snprintf(name, sizeof name, "lnet_fpga_%s_d%d_q%d_k%d", stage[i], cfg->dim, cfg->tile_q,
                 cfg->tile_k);
        cl_int err;
        *k[i] = clCreateKernel(p->program, name, &err);
        if (err != CL_SUCCESS) {
            fpga_program_free(p);
            if (!have_dir)
                return ocl_fail(LNET_PLUGIN_ERR_DEVICE, "fpga: clCreateKernel(%s): %s", name,
                                ocl_error_name(err));
            char why[256];
            snprintf(why, sizeof why,
                     "it was built for other macros: it has no kernel %s (clCreateKernel: %s)",
                     name, ocl_error_name(err));
            return fpga_refuse(dev, cfg, path, why);
        }
    }
    p->next = dev->programs;
    dev->programs = p;
    *out = p;
    return LNET_PLUGIN_OK;
}

void fpga_free_programs(fpga_device *dev)
{
    fpga_program *p = dev->programs;
    while (p) {
        fpga_program *next = p->next;
        fpga_program_free(p);
        p = next;
    }
    dev->programs = NULL;
}
