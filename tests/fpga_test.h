/* fpga_test.h — the FPGA tests' start: Intel's FPGA emulator found and the
 * ICD loader pointed at it. */
#ifndef LNET_TEST_FPGA_H
#define LNET_TEST_FPGA_H

/* The emulator is DIR = $LONGNET_FPGA_EMULATOR (configure's
 * --with-fpga-emulator, default /opt/longnet-fpga-emu when installed
 * there), as scripts/install-fpga-emulator leaves it. Its .icd file holds
 * a placeholder, and Debian's ICD loader does not load it, so the test
 * re-executes itself once with OCL_ICD_FILENAMES=DIR/lib/libintelocl_emu.so
 * and DIR/lib (the wheels' own loader) first on LD_LIBRARY_PATH, which the
 * dynamic linker reads only at start. Returns 0 to go on, or 77 (after
 * printing why and the script that installs it) when it is not installed;
 * once installed, a missing fpga:0 is the test's failure, not a skip. */
int fpga_test_start(int argc, char **argv);

/* 1 in a sanitizer build (the asan and tsan stages run the suite again):
 * the FPGA tests then run fewer random cases, the emulator being slow. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FPGA_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FPGA_TEST_SANITIZED 1
#endif
#endif
#ifndef FPGA_TEST_SANITIZED
#define FPGA_TEST_SANITIZED 0
#endif

#endif /* LNET_TEST_FPGA_H */
