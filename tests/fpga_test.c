#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* fpga_test.c — see fpga_test.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fpga_test.h"

/* Added to TSAN_OPTIONS for the FPGA tests (see below); the emulated run of
 * tests/cli_conformance.sh adds the same. */
#define FPGA_TEST_TSAN_OPTIONS "report_mutex_bugs=0 ignore_noninstrumented_modules=1"

int fpga_test_start(int argc, char **argv)
{
    (void)argc;
    const char *dir = getenv("LONGNET_FPGA_EMULATOR");
    char lib[4096], icd[4200];
    snprintf(lib, sizeof lib, "%s/lib", dir && dir[0] ? dir : "/opt/longnet-fpga-emu");
    snprintf(icd, sizeof icd, "%s/libintelocl_emu.so", lib);
    if (access(icd, R_OK) != 0) {
        printf("SKIP: Intel's FPGA emulator is not installed (no %s): install it with "
               "scripts/install-fpga-emulator [DIR] and configure --with-fpga-emulator=DIR "
               "(CI must not skip this)\n",
               icd);
        return 77;
    }
    const char *now = getenv("OCL_ICD_FILENAMES");
    if (now && strcmp(now, icd) == 0)
        return 0;
    if (getenv("LONGNET_FPGA_TEST_REEXEC")) {
        printf("FAIL: OCL_ICD_FILENAMES did not survive the re-execution\n");
        return 1;
    }
    const char *ld = getenv("LD_LIBRARY_PATH");
    size_t n = strlen(lib) + (ld ? strlen(ld) : 0) + 2;
    char *path = malloc(n);
    if (!path) {
        printf("FAIL: out of memory\n");
        return 1;
    }
    snprintf(path, n, "%s%s%s", lib, ld && ld[0] ? ":" : "", ld ? ld : "");
    setenv("LD_LIBRARY_PATH", path, 1);
    free(path);
    setenv("OCL_ICD_FILENAMES", icd, 1);
    setenv("LONGNET_FPGA_TEST_REEXEC", "1", 1);
    /* Under ThreadSanitizer, two things of the emulator's own are turned off
     * for the FPGA tests only (FPGA_TEST_TSAN_OPTIONS): its exit handler
     * unlocks a global mutex of libintelocl_emu.so it does not hold, from a
     * frame TSan cannot name (no frame pointers), so no suppression matches
     * it; and its kernels run as JIT code on TBB threads, whose channel
     * copies (memcpy from code no library owns) are ordered by atomics TSan
     * cannot see. ignore_noninstrumented_modules skips interceptor calls made
     * from uninstrumented code only: every access of longnet's own (host)
     * code is still checked, and the rest of the suite keeps every report. */
    const char *tsan = getenv("TSAN_OPTIONS");
    if (tsan) {
        char opts[4096];
        snprintf(opts, sizeof opts, "%s " FPGA_TEST_TSAN_OPTIONS, tsan);
        setenv("TSAN_OPTIONS", opts, 1);
    }
    fflush(stdout);
    execv("/proc/self/exe", argv);
    printf("FAIL: re-executing /proc/self/exe with the emulator's loader failed\n");
    return 1;
}
