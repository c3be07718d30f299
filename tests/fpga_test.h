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

#endif /* LNET_TEST_FPGA_H */
