# cli_conformance.sh — `longnet test`, the plugin conformance test: it
# passes on the in-tree backends (cpu; opencl:0 where an OpenCL device is
# found; fpga:0 in Intel's FPGA emulator where configure found it), and fails, with a report naming what broke, on fixture
# plugins that give a wrong answer, crash on a ragged segment, or accept
# a bad job (tests/conform), each check in its own process so that the
# crash is reported and the other checks still run. Also the loader's
# score rule: of three builds of one backend name (tests/scored), the
# highest score is kept (the first found among equals) and `longnet info`
# lists all three, saying which was kept and why.
. "${TESTS_SRCDIR:-.}/cli_lib.sh"

build=${LONGNET_BUILDDIR:-$(dirname "$(dirname "$LONGNET")")}
conform="$build/tests/conform"

# conform_run NAME EXPECTED_RC ARGS... — runs `longnet test ARGS` into $out.
conform_run() {
    name=$1
    want=$2
    shift 2
    "$LONGNET" test "$@" >"$out" 2>"$err"
    rc=$?
    if test "$rc" -eq "$want"; then
        pass "$name: exit status $want"
    else
        fail "$name: exit status $rc, expected $want"
    fi
}

# ----------------------------------------------------------- the backends
conform_run "cpu --quick" 0 --device cpu --quick
check "cpu: every check passed" grep -q '^longnet test: 8 passed, 0 skipped, 0 failed$' "$out"
check "cpu: the golden cases ran" grep -q 'case run(s) of 10 case(s)' "$out"

if "$LONGNET" info 2>/dev/null | grep -q '^  opencl:0 '; then
    conform_run "opencl:0 --quick" 0 --device opencl:0 --quick
    check "opencl:0: nothing failed" grep -q '^longnet test: [0-9]* passed, [0-9]* skipped, 0 failed$' "$out"
else
    echo "SKIP: no OpenCL device (longnet info lists no opencl:0): the opencl run is left out"
fi

# The FPGA backend in Intel's FPGA emulator, where configure found it
# (scripts/install-fpga-emulator): the ICD loader pointed at the emulator,
# as tests/fpga_test.c does. Forward only, so the backward check skips.
# Under ThreadSanitizer the emulator's own mutex misuse and its JIT kernels'
# channel copies are left unchecked, as tests/fpga_test.c does and says why.
emu=${LONGNET_FPGA_EMULATOR:-}
if test -n "$emu" && test -f "$emu/lib/libintelocl_emu.so"; then
    TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS report_mutex_bugs=0 ignore_noninstrumented_modules=1}" \
    OCL_ICD_FILENAMES=$emu/lib/libintelocl_emu.so \
    LD_LIBRARY_PATH=$emu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
        conform_run "fpga:0 --quick (emulated)" 0 --device fpga:0 --quick
    check "fpga:0: nothing failed" grep -q '^longnet test: [0-9]* passed, [0-9]* skipped, 0 failed$' "$out"
    check "fpga:0: the golden cases ran" grep -q 'case run(s) of 10 case(s)' "$out"
    check "fpga:0: the backward is reported absent" grep -q 'no run_segment_backward slot' "$out"
else
    echo "SKIP: Intel's FPGA emulator was not found by configure (scripts/install-fpga-emulator): the fpga run is left out"
fi

# --------------------------------------------------------- the command line
expect_usage_error "--device NAME[:I] or --plugin MODULE" "$LONGNET" test
expect_usage_error "'nope' is not a check" "$LONGNET" test --device cpu --only nope
expect_usage_error "'cpu:x' is not NAME or NAME:INDEX" "$LONGNET" test --device cpu:x
conform_run "a device that does not exist" 1 --device cpu:7 --only describe
check "... says which devices there are" grep -q 'has 1 device(s): there is no cpu:7' "$out"

# ------------------------------------------------- shown able to fail
# Only the checks each fixture is about, to keep the suite short.
conform_run "wrong answer" 1 --plugin "$conform/longnet-broken-wrong.la" --quick --only golden,random
check "wrong answer: random fails" grep -q '^  FAIL  random$' "$out"
check "wrong answer: the report names the value" grep -q 'but the reference kernel gives' "$out"
check "wrong answer: the golden cases fail too" grep -q '^  FAIL  golden$' "$out"

conform_run "crash on a ragged segment" 1 --plugin "$conform/longnet-broken-crash.la" --quick \
    --only random,open-close
# A sanitizer build reports the SIGSEGV itself and exits: the same verdict.
check "crash: random reported as a crash" grep -q '^  FAIL  random: CRASHED' "$out"
check "crash: the report says during which case" grep -q 'CRASHED.*during: B=' "$out"
check "crash: the checks after it still ran" grep -q '^  ok    open-close$' "$out"
check "crash: the summary counts it" grep -q '^longnet test: .* failed: .*random' "$out"

conform_run "bad job accepted" 1 --plugin "$conform/longnet-broken-lax.la" --quick --only bad-jobs
check "lax: the bad job is named" grep -q 'dilation > segment: run_segment accepted it' "$out"

# ------------------------------------------------------------ score
LONGNET_PLUGIN_PATH="$build/tests/scored" "$LONGNET" info >"$out" 2>"$err"
check "score: all three modules are listed" test "$(grep -c 'longnet-scored-' "$out")" -ge 3
check "score: b is loaded" sh -c "grep -A1 'scored-b\$' '$out' | grep -q 'name: scored, ABI 2, loaded'"
check "score: a (1, found first) is refused for b's higher score" \
    grep -q "is served by .*longnet-scored-b, whose score 5 is higher than this one's 1" "$out"
check "score: c (5, equal) is refused: b was found first" \
    grep -q "already loaded from .*longnet-scored-b (found first; both score 5)" "$out"
check "score: info says why b was kept" \
    grep -q "kept over .*longnet-scored-a (score 5 > 1); kept over .*longnet-scored-c (found first, score 5 = 5)" "$out"

finish
