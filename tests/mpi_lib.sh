# mpi_lib.sh — sourced (after cli_lib.sh) by the tests that run under
# mpirun: the skip when longnet was built without MPI, Open MPI's settings
# for a root CI container on 2 cores, and mpirun bounded by a timeout.
if test -z "$LONGNET_MPIRUN" || ! test -x "$LONGNET_MPIRUN"; then
    echo "SKIP: longnet was built without MPI (configure found no mpicc or ompi-c), or mpirun is missing"
    exit 77
fi
# ThreadSanitizer (clang 14's runtime) deadlocks inside itself at
# MPI_Finalize: Open MPI's event thread has a (suppressed) report
# symbolized, holding the loader's lock, while the main thread dlcloses a
# component and waits for TSan's slot lock (seen in 1 of 11 runs). No
# longnet frame is involved; a hang would cost CI its time budget.
if test -n "${TSAN_OPTIONS:-}"; then
    echo "SKIP: under ThreadSanitizer Open MPI's MPI_Finalize can deadlock inside TSan's runtime (symbolizer against dlclose); run the plain and ASan builds"
    exit 77
fi
# Root in a CI container; more ranks than cores on this machine.
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OMPI_MCA_rmaps_base_oversubscribe=1
# Open MPI's components stay loaded at MPI_Finalize (its setting for memory
# checkers): LeakSanitizer then names their frames (mca_*, suppressed as
# Open MPI's own in tests/sanitizers/lsan.supp) instead of "<unknown
# module>", which no suppression can match.
OMPI_MCA_mca_base_component_disable_dlclose=1
# Under ASan, the slow unwinder for allocations: Open MPI's libraries are
# built without frame pointers, and the fast one loses their frames (a
# leak "from <unknown module>"), which no suppression can match.
if test -n "${ASAN_OPTIONS:-}"; then
    ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0"
    export ASAN_OPTIONS
fi
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM OMPI_MCA_rmaps_base_oversubscribe \
    OMPI_MCA_mca_base_component_disable_dlclose
# Every run is bounded: a hang is a failure, not a stuck CI job. Under a
# sanitizer (scripts/check sets its options) every process starts many
# times slower: longer bounds, and no 4-rank case (4 instrumented
# processes on 2 cores).
limit=120 sanitized=
if test -n "${ASAN_OPTIONS:-}${TSAN_OPTIONS:-}"; then
    limit=600 sanitized=1
fi
LONGNET_MPI_TIMEOUT=$((limit / 2))
export LONGNET_MPI_TIMEOUT
# TSan symbolizes the (suppressed) reports in Open MPI's components after
# MPI_Finalize has unloaded them, and says it cannot read them: that line,
# and only it, is not the run's output.
mpirun() {
    timeout $limit "$LONGNET_MPIRUN" --oversubscribe "$@" 2>"$tmp/mpirun.err"
    mpirun_rc=$?
    grep -v '^LLVMSymbolizer: error reading file: No such file or directory$' "$tmp/mpirun.err" >&2
    return $mpirun_rc
}

