# failalloc.sh — every allocation failure along a whole `longnet run`: the
# shim tests/failalloc (LD_PRELOAD) fails longnet's k-th allocation, for
# k = 1, 2, ... until a run has no k-th allocation left to fail. Each run
# must either fail the way a user should see it (exit 1, one line on stderr
# naming the problem; "longnet run: warning:" lines about failover allowed)
# or succeed with the right output, and in both cases leak none of longnet's
# blocks (the shim's own bookkeeping). Never a crash (exit >= 128).
#
# Scenarios: the golden `basic` case on the CPU device; on the list
# "cpu=1,cpu=1" with --lse.
#
# FAILALLOC_VALGRIND=N also runs every N-th k under valgrind memcheck (no
# errors, no definite or indirect leaks); CI sets it (.ci/run), `make check`
# does not (it would take minutes).
. "${TESTS_SRCDIR:-.}/cli_lib.sh"

top=$(dirname "$(dirname "$LONGNET")")
shim="$top/tests/failalloc/.libs/failalloc.so"
golden="${LONGNET_GOLDEN_DIR:-}/basic"
if ! test -f "$shim"; then
    echo "SKIP: the shim $shim is not built"
    exit 77
fi
if ! test -f "$golden/q.npy"; then
    echo "FAIL: no golden case in '$golden' (they ship in tests/golden)"
    exit 1
fi
# In a sanitizer build the shim is instrumented too and cannot be preloaded
# into programs without the sanitizer's runtime; the sanitizer's allocator
# would come first anyway. The walk is the plain build's job.
if nm -D -u "$shim" 2>/dev/null | grep -q -e '__asan_' -e '__tsan_' -e '__ubsan_'; then
    echo "SKIP: $shim is built with a sanitizer; the walk runs in a plain build"
    exit 77
fi
vg_every=${FAILALLOC_VALGRIND:-0}
if test "$vg_every" -gt 0 && ! command -v valgrind >/dev/null 2>&1; then
    echo "FAILALLOC_VALGRIND is set but valgrind is not installed"
    exit 99
fi

cd "$tmp" || exit 99
report="$tmp/report"

# run_at K ARGS... — runs longnet under the shim failing allocation K
# (0: none); sets rc, and the shim's figures: allocs, injected, leaked.
run_at() {
    k=$1
    shift
    rm -f "$report" o.npy l.npy
    FAILALLOC_AT=$k FAILALLOC_REPORT="$report" LD_PRELOAD="$shim" \
        "$LONGNET" "$@" >"$out" 2>"$err"
    rc=$?
    allocs=0 injected=0 leaked=-1
    if test -f "$report"; then
        read -r _ allocs _ injected _ leaked _ <"$report"
    fi
}

# valgrind_at K ARGS... — the same run under valgrind memcheck.
valgrind_at() {
    k=$1
    shift
    FAILALLOC_AT=$k LD_PRELOAD="$shim" "$top/libtool" --mode=execute \
        valgrind -q --error-exitcode=99 --leak-check=full \
        --suppressions="$TESTS_SRCDIR/sanitizers/valgrind.supp" \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        "$LONGNET" "$@" >"$tmp/vg.out" 2>"$tmp/vg.err"
    vrc=$?
    if test "$vrc" -eq 99 || test "$vrc" -ge 128; then
        fail "valgrind: no errors or leaks with allocation $k failed: $*" "exit status $vrc"
        sed 's/^/      valgrind: /' "$tmp/vg.err" | head -n 40
    else
        pass "valgrind: no errors or leaks with allocation $k failed"
    fi
}

scenario() {
    name=$1
    shift
    # The reference: no failure, no leak.
    run_at 0 "$@"
    if test "$rc" -eq 0 && ! test -f "$report"; then
        # A sanitizer build links its own allocator into the program, ahead
        # of any LD_PRELOAD: the shim never sees an allocation. The walk is
        # the plain build's job.
        echo "SKIP: the shim saw no allocation (a sanitizer build's allocator comes first)"
        exit 77
    fi
    if test "$rc" -ne 0 || test "$leaked" != 0 || test "$allocs" -lt 1; then
        fail "$name: runs under the shim without failures" \
            "exit status $rc, $allocs allocations counted, $leaked leaked"
        cat "$report" 2>/dev/null
        return
    fi
    pass "$name: runs under the shim ($allocs allocations, none leaked)"
    cp o.npy ref.npy
    total=$allocs
    k=1 failures=0 tolerated=0 bad=0
    while :; do
        run_at "$k" "$@"
        if test "$injected" = 0 && test "$rc" -eq 0; then
            break # no k-th allocation: the walk is complete
        fi
        nonwarn=$(grep -v -c '^longnet run: warning: ' "$err")
        if test "$rc" -ge 128 || test "$leaked" = -1; then
            fail "$name: allocation $k failed: no crash" "exit status $rc"
            bad=$((bad + 1))
        elif test "$leaked" != 0; then
            fail "$name: allocation $k failed: nothing leaked" "$(cat "$report")"
            bad=$((bad + 1))
        elif test "$rc" -ne 0; then
            first=$(grep -v '^longnet run: warning: ' "$err" | head -n 1)
            if test "$rc" -ne 1 || test "$nonwarn" -ne 1; then
                fail "$name: allocation $k failed: exit 1 with one line" \
                    "exit status $rc, $nonwarn lines on stderr"
                bad=$((bad + 1))
            elif ! echo "$first" | grep -q '^longnet[ a-z]*: .'; then
                fail "$name: allocation $k failed: the line names the command" "$first"
                bad=$((bad + 1))
            fi
            failures=$((failures + 1))
        elif ! cmp -s o.npy ref.npy; then
            fail "$name: allocation $k failed and the run succeeded: same output" ""
            bad=$((bad + 1))
        else
            tolerated=$((tolerated + 1))
        fi
        if test "$vg_every" -gt 0 && test $((k % vg_every)) -eq 1; then
            valgrind_at "$k" "$@"
        fi
        k=$((k + 1))
        if test "$k" -gt $((total * 4 + 100)); then
            fail "$name: the walk ends" "still injecting at k = $k (reference: $total)"
            break
        fi
    done
    if test "$bad" -eq 0; then
        pass "$name: each of $((k - 1)) allocations failed in turn: $failures clean failures, $tolerated tolerated with the same output, no crash, no leak"
    fi
}

g=$golden
common="--q $g/q.npy --k $g/k.npy --v $g/v.npy --segments 16,32,64 --dilations 1,2,4 --scale 0.25 --quiet"
# shellcheck disable=SC2086
scenario "cpu" run $common --device cpu --out o.npy
# shellcheck disable=SC2086
scenario "cpu=1,cpu=1 --lse" run $common --device cpu=1,cpu=1 --lse l.npy --out o.npy

finish
