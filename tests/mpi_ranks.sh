#!/bin/sh
# mpi_ranks.sh — `longnet run --mpi` and `longnet grad --mpi` under mpirun
# (issue 14): on 2, 3 and 4 ranks, forward and backward give the files the
# one-process run of the same plan writes, byte for byte (and within 1e-5
# of a single device's), causal and not, on an uneven N, by gather and
# ring, with contiguous and zigzag chunks; a rank that fails makes every
# rank exit non-zero naming it, leaves no output, and hangs nothing; the
# bytes each rank exchanges do not grow with N. Skips (77) when longnet was
# built without MPI or mpirun is missing.
. "${TESTS_SRCDIR:-$(dirname "$0")}/cli_lib.sh"

. "${TESTS_SRCDIR:-$(dirname "$0")}/mpi_lib.sh"

cd "$tmp" || exit 99
# N = 200 is not a multiple of the smallest segment (16): chunks are uneven.
seed=10
for x in q k v dout; do
    seed=$((seed + 1))
    "$LONGNET" gen --shape 2,200,4,16 --seed $seed --out $x.npy || exit 99
done
CFG="--q q.npy --k k.npy --v v.npy --segments 16,32,64,200 --dilations 1,2,4,8"

# ones N — "cpu=1,cpu=1,...": N workers of equal weight, the one-process
# run of the plan N ranks (zigzag: N/2 ranks) make.
ones() {
    yes cpu=1 | head -n "$1" | paste -sd, -
}

# max_diff A B — the largest |a - b| over two .npy files of one shape.
max_diff() {
    ha=$(( $(od -An -tu2 -j8 -N2 "$1" | tr -d ' ') + 10 ))
    hb=$(( $(od -An -tu2 -j8 -N2 "$2" | tr -d ' ') + 10 ))
    od -An -v -f -j "$ha" "$1" | tr -s ' ' '\n' | sed '/^$/d' >"$tmp/a.txt"
    od -An -v -f -j "$hb" "$2" | tr -s ' ' '\n' | sed '/^$/d' >"$tmp/b.txt"
    paste "$tmp/a.txt" "$tmp/b.txt" |
        awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "%.9g\n", m + 0 }'
}
close_enough() {
    awk -v d="$(max_diff "$1" "$2")" 'BEGIN { exit !(d <= 1e-5) }'
}

# same_as_one_process RANKS LAYOUT OPTIONS... — run and grad across RANKS
# against the one-process run of the same plan: the same bytes.
same_as_one_process() {
    np=$1 layout=$2
    shift 2
    workers=$np
    test "$layout" = zigzag && workers=$((2 * np))
    what="-np $np --layout $layout $*"
    "$LONGNET" run $CFG "$@" --device "$(ones $workers)" --out o1.npy --lse l1.npy --quiet
    "$LONGNET" grad $CFG "$@" --device "$(ones $workers)" --dout dout.npy \
        --dq dq1.npy --dk dk1.npy --dv dv1.npy --quiet
    rm -f o2.npy l2.npy dq2.npy dk2.npy dv2.npy
    expect_ok mpirun -np "$np" "$LONGNET" run $CFG "$@" --mpi --layout "$layout" \
        --out o2.npy --lse l2.npy --quiet
    check "run $what: O and LSE are the one-process files" sh -c 'cmp o1.npy o2.npy && cmp l1.npy l2.npy'
    expect_ok mpirun -np "$np" "$LONGNET" grad $CFG "$@" --mpi --layout "$layout" --dout dout.npy \
        --dq dq2.npy --dk dk2.npy --dv dv2.npy --quiet
    check "grad $what: dQ, dK, dV are the one-process files" \
        sh -c 'cmp dq1.npy dq2.npy && cmp dk1.npy dk2.npy && cmp dv1.npy dv2.npy'
}

# Each ranks count, both algorithms, both layouts, causal and not (every
# mpirun costs a second or two on a 2-core machine: one case each).
same_as_one_process 2 contiguous --algorithm gather
same_as_one_process 2 zigzag --algorithm ring --causal
test -n "$sanitized" || same_as_one_process 4 zigzag --algorithm gather --causal
same_as_one_process 3 contiguous --causal

# Against one device (another plan: the same answer up to rounding), the
# -np 3 files just written.
"$LONGNET" run $CFG --causal --out os.npy --quiet
"$LONGNET" grad $CFG --causal --dout dout.npy --dq dqs.npy --dk dks.npy --dv dvs.npy --quiet
check "run -np 3: O within 1e-5 of one device's" close_enough os.npy o2.npy
for g in q k v; do
    check "grad -np 3: d$(echo $g | tr a-z A-Z) within 1e-5 of one device's" close_enough d${g}s.npy d${g}2.npy
done
# The checks can fail: a non-causal O is neither the causal file nor close to it.
"$LONGNET" run $CFG --out onc.npy --quiet
check "a different O fails the byte comparison" sh -c '! cmp -s onc.npy os.npy'
d=$(max_diff onc.npy os.npy)
check "a different O fails the 1e-5 comparison (max |diff| $d)" awk -v d="$d" 'BEGIN { exit (d <= 1e-5) }'

# A failing rank: the faulty fixture on rank 1 only (its device fails on
# its 2nd run_segment call). Every rank exits non-zero naming rank 1 and
# the call; the existing output is untouched and no temporary is left.
FAULTY="$(dirname "$LONGNET")/../tests/faulty/.libs/longnet-faulty.so"
test -f "$FAULTY" || FAULTY="$(cd "$TESTS_SRCDIR/.." && pwd)/tests/faulty/.libs/longnet-faulty.so"
INNER="$(dirname "$LONGNET")/../backends/cpu/.libs/longnet-cpu.so"
if test -f "$FAULTY" && test -f "$INNER"; then
    mkdir out && cp os.npy out/o.npy && cp os.npy keep.npy
    FENV="LONGNET_PLUGIN_PATH=$FAULTY LONGNET_FAULTY_INNER=$INNER LONGNET_FAULTY_DEVICES=1"
    mpirun -np 1 env $FENV "$LONGNET" run $CFG --device faulty=1 --mpi --out out/o.npy --quiet : \
        -np 1 env $FENV LONGNET_FAULTY_FAIL=0:2 "$LONGNET" run $CFG --device faulty=1 --mpi \
        --out out/o.npy --quiet >"$out" 2>"$err"
    rc=$?
    check "a failed rank: mpirun exits non-zero, not by the timeout (rc $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
    check "a failed rank: rank 0 names rank 1 and the call" \
        grep -q 'rank 0 of 2\]: rank 1 of 2 failed (the forward): .*injected failure' "$err"
    check "a failed rank: rank 1 says so too" \
        grep -q 'rank 1 of 2\]: rank 1 of 2 failed (the forward)' "$err"
    check "a failed rank leaves the existing output untouched" cmp out/o.npy keep.npy
    check "a failed rank leaves no temporary" test "$(ls out)" = o.npy
    # The backward from saved O, LSE: the failure comes in its own pass.
    "$LONGNET" run $CFG --out fo.npy --lse fl.npy --quiet
    mpirun -np 1 env $FENV "$LONGNET" grad $CFG --device faulty=1 --mpi --dout dout.npy --out fo.npy \
        --lse fl.npy --dq out/dq.npy --dk out/dk.npy --dv out/dv.npy --quiet : \
        -np 1 env $FENV LONGNET_FAULTY_FAIL=0:2 "$LONGNET" grad $CFG --device faulty=1 --mpi \
        --dout dout.npy --out fo.npy --lse fl.npy --dq out/dq.npy --dk out/dk.npy --dv out/dv.npy \
        --quiet >"$out" 2>"$err"
    rc=$?
    check "a failed rank in the backward: non-zero exit (rc $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
    check "a failed rank in the backward: both ranks name rank 1" \
        sh -c "test \$(grep -c 'rank 1 of 2 failed (the backward)' '$err') -eq 2"
    check "a failed rank in the backward writes no gradient" test "$(ls out)" = o.npy
else
    fail "the faulty fixture is built by make check" "$FAULTY or $INNER missing"
fi

# Bytes between ranks do not grow with N (LongNet's claim): the paper's
# levels up to N (w / r = 16 rows per head and segment), N = 256 and 1024.
# explain_totals N [SEGMENTS DILATIONS [OPTIONS...]] — each rank's total.
explain_totals() {
    n=$1 segs=${2:-} dils=${3:-} w=16 r=1
    shift
    test $# -ge 2 && shift 2
    while test -z "$segs$dils" && test "$w" -le "$n"; do
        segs="$segs${segs:+,}$w"
        dils="$dils${dils:+,}$r"
        w=$((w * 2))
        r=$((r * 2))
    done
    for x in eq ek ev; do "$LONGNET" gen --shape 1,$n,4,16 --out $x$n.npy; done
    mpirun -np 2 "$LONGNET" run --q eq$n.npy --k ek$n.npy --v ev$n.npy --segments "$segs" \
        --dilations "$dils" --mpi --explain --out eo$n.npy --quiet "$@" | grep 'total: sends'
}
explain_totals 256 >b256.txt
explain_totals 1024 >b1024.txt
check "--explain lists each rank's bytes" test "$(wc -l <b256.txt)" -eq 2
check "bytes per rank at N = 256 and N = 1024 are equal" cmp b256.txt b1024.txt
# Ring attention moves whole blocks: its bytes grow with N, and the
# comparison says so.
explain_totals 256 256 1 --algorithm ring >r256.txt
explain_totals 1024 1024 1 --algorithm ring >r1024.txt
check "ring blocks' bytes grow with N (the comparison can fail)" sh -c '! cmp -s r256.txt r1024.txt'

finish
