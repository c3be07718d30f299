# cli_plan.sh — `longnet plan`: its figures against ones computed by hand
# for small cases (memory, bytes per level, pairs and FLOPs, the time
# model), its bytes against what `longnet run --explain` and `longnet grad
# --explain` print for the same split over R cpu devices, sizes at 10^9
# tokens and beyond, its refusals (one line naming the bad value), and each
# kind of comparison shown able to fail on a wrong expected value.
. "${TESTS_SRCDIR:-.}/cli_lib.sh"

cd "$tmp" || exit 99

# has LINE — the last command's stdout holds LINE, exactly, as a whole line.
has() {
    grep -F -x -q -e "$1" "$out"
}

# plan_bytes FILE PASS — "wI receives X, sends Y" per rank, in --explain's
# units (the exact "(N B)" left out).
plan_bytes() {
    sed -n "s/^rank \([0-9]*\): $2 receives \(.*\), sends \(.*\)$/w\1 receives \2, sends \3/p" "$1" |
        sed 's/ ([0-9]* B)//g'
}

# explain_bytes FILE — the same from --explain's "bytes per device" lines.
explain_bytes() {
    sed -n '/^bytes per device/,$s/^  \(w[0-9]*\) [^ ]* *\(receives .*\)$/\1 \2/p' "$1"
}

# plan_levels FILE / explain_levels FILE R — "level L wI receives X" for
# every level and rank, sorted: --explain says "local on every device" for
# a level that moves nothing.
plan_levels() {
    sed -n 's/^rank \([0-9]*\): forward level \([0-9]*\) ([^)]*) receives \(.*\), sends .*$/level \2 w\1 receives \3/p' "$1" |
        sed 's/ ([0-9]* B)//g' | sort
}
explain_levels() {
    awk -v r="$2" '
        /^level [0-9]+:/ { lv = $2; sub(":", "", lv)
                           if ($0 ~ /local on every device/)
                               for (i = 0; i < r; i++) print "level " lv " w" i " receives 0 B" }
        /^  w[0-9]+ .*; receives / { w = $1; s = $0; sub(/.*; receives /, "", s)
                                     print "level " lv " " w " receives " s }' "$1" | sort
}

# same_lines A B — the two files hold the same lines (and some).
same_lines() {
    test -s "$1" && cmp -s "$1" "$2"
}

# not COMMAND... — succeeds when COMMAND fails: a check shown able to fail.
not() {
    ! "$@"
}

SMALL="--tokens 64 --ranks 2 --mem-per-rank 1GiB --segments 16,32,64 --dilations 1,2,4 --head-dim 16"

# -------------------------------------------------------------------- help
expect_ok "$LONGNET" plan --help
check "'plan --help' shows its usage" grep -q "Usage: longnet plan" "$out"
for opt in --tokens --ranks --devices-per-rank --mem-per-rank --throughput --measure \
    --bandwidth --backward --heads --head-dim --batch --causal --segments; do
    check "plan --help describes $opt" grep -q -e "$opt" "$out"
done
expect_ok "$LONGNET" --help
check "--help lists plan" grep -q '^  plan ' "$out"

# ------------------------------------------- a small case computed by hand
# N = 64, H = 1, D = 16, levels 16/1 32/2 64/4 over 2 ranks of 32 rows (the
# plan drawn in doc/ARCHITECTURE.md). Q, K, V, O: 32 x 16 x 4 = 2048 B
# each, LSE 32 x 4 = 128 B. Only level 2's one segment spans the ranks:
# each sends the other its selected rows (rows 0, 4, ... of its 32: 8 of
# them) of K and V, 2 x 8 x 16 x 4 = 1024 B; buffers 1024 in + 1024 out.
# Total 4 x 2048 + 128 + 2048 = 10368 B. Pairs per rank: level 0 two
# segments of 16 x 16 = 512; level 1 one segment, 16 selected rows, 256;
# level 2 its 8 selected queries x the segment's 16 keys = 128; FLOPs
# 4 x 16 x 896 = 57344.
# shellcheck disable=SC2086
expect_ok "$LONGNET" plan $SMALL
check "rank 1's rows" has "rank 1: rows [32, 64), 32 tokens"
check "memory of each tensor" \
    has "rank 0: memory Q, K, V, O 2.0 KiB (2048 B) each, LSE 128 B; exchange buffers 2.0 KiB (2048 B)"
check "memory in all, and that it fits" \
    has "rank 0: memory total 10.1 KiB (10368 B) of 1.0 GiB (1073741824 B): fits (per device, 1/1 of it: 10.1 KiB)"
check "bytes per rank" has "rank 1: forward receives 1.0 KiB (1024 B), sends 1.0 KiB (1024 B)"
check "nothing moves at a level inside the chunks" has "rank 0: forward level 1 (32/2) receives 0 B, sends 0 B"
check "the spanning level's bytes" \
    has "rank 0: forward level 2 (64/4) receives 1.0 KiB (1024 B), sends 1.0 KiB (1024 B)"
check "pairs per level and FLOPs" \
    has "rank 0: pairs level 0 512, level 1 256, level 2 128; FLOPs 57344 (5.734e+04)"
check "no time without a throughput" \
    has "predicted time: not computed (give --throughput or --measure)"
# The kind of check above, shown able to fail: a figure one byte off.
check "a wrong expected memory is caught" not has \
    "rank 0: memory total 10.1 KiB (10369 B) of 1.0 GiB (1073741824 B): fits (per device, 1/1 of it: 10.1 KiB)"

# Causal: a query needs no later key, so rank 0 receives nothing, and
# rank 1 still gets rank 0's 8 rows. Pairs: level 0 2 x 16 x 17 / 2 = 272,
# level 1 16 x 17 / 2 = 136, level 2 the j-th selected query scores j + 1
# keys: rank 0 j = 0..7, 36; rank 1 j = 8..15, 100.
# shellcheck disable=SC2086
expect_ok "$LONGNET" plan $SMALL --causal
check "causal: rank 0 receives nothing" has "rank 0: forward receives 0 B, sends 1.0 KiB (1024 B)"
check "causal: rank 1 receives rank 0's rows" has "rank 1: forward receives 1.0 KiB (1024 B), sends 0 B"
check "causal pairs of rank 0" has "rank 0: pairs level 0 272, level 1 136, level 2 36; FLOPs 28416 (2.842e+04)"
check "causal pairs of rank 1" has "rank 1: pairs level 0 272, level 1 136, level 2 100; FLOPs 32512 (3.251e+04)"

# The ranks' pairs add up to the whole call's, also where segments cross
# rank boundaries at odd places (N = 1000, 7 ranks, causal, 3 heads,
# grouped offsets): the whole call's FLOPs are printed by the model line.
expect_ok "$LONGNET" plan --tokens 1000 --ranks 7 --mem-per-rank 1GiB --segments 16,48,1000 \
    --dilations 1,3,7 --causal --heads 3 --head-dim 8 --offsets grouped
sum_flops() {
    sed -n 's/^rank [0-9]*: pairs .*; FLOPs \([0-9]*\) .*/\1/p' "$out" | awk '{ s += $1 } END { printf "%.0f", s }'
}
whole_flops() {
    sed -n 's/^model: .*; the whole call \([0-9]*\) FLOPs.*/\1/p' "$out"
}
check "the ranks' FLOPs add up to the whole call's" test "$(sum_flops)" = "$(whole_flops)"
check "... a sum one FLOP off is caught" not test "$(sum_flops)" = "$(($(whole_flops) + 1))"

# Backward: K and V brought again and the dK, dV contributions sent back
# (1024 B more each way): 2048 B in, 2048 out; memory 8 x 2048 + 2 x 128
# (LSE, Delta) + 4096 = 20736 B. FLOPs x 3.5: 57344 x 3.5 = 200704.
# shellcheck disable=SC2086
expect_ok "$LONGNET" plan $SMALL --backward
check "backward bytes" has "rank 0: backward receives 2.0 KiB (2048 B), sends 2.0 KiB (2048 B)"
check "backward memory" \
    has "rank 1: memory total 20.2 KiB (20736 B) of 1.0 GiB (1073741824 B): fits (per device, 1/1 of it: 20.2 KiB)"
check "forward + backward FLOPs" \
    has "rank 0: pairs level 0 512, level 1 256, level 2 128; FLOPs 200704 (2.007e+05)"

# The time model: 114688 FLOPs for 64 tokens, 1792 per token; at 1000
# tokens/s a rank computes 57344 / 1792000 = 0.032 s, and at 1024 B/s its
# 1024 B take 1 s: 1.032 s.
# shellcheck disable=SC2086
expect_ok "$LONGNET" plan $SMALL --throughput 1000 --bandwidth 1024
check "each rank's time" has "rank 1: time compute 0.032 s + communication 1 s"
check "the predicted time" has "predicted time: 1.032 s (compute 0.032 s + communication 1 s)"
check "the model is stated" grep -q "model: predicted = max_r compute_r + max_r communication_r" "$out"
check "a wrong expected time is caught" not has \
    "predicted time: 1.033 s (compute 0.032 s + communication 1 s)"

# Two devices per rank: the bytes between ranks are the plan's transfers
# from one rank's devices to the other's (4 workers of 16 rows; level 2's
# segment spans all four: each worker gets 4 selected rows from each of
# the other three, 2 x 4 x 16 x 4 = 512 B from each; across ranks: 2
# workers x 2 peers x 512 B = 2048 B each way); level 0 stays inside the
# workers, level 1's two segments inside the ranks. Memory: the buffers
# are 2048 in + 2048 out: 4 x 2048 + 128 + 4096 = 12416 B, 6208 per device.
# shellcheck disable=SC2086
expect_ok "$LONGNET" plan $SMALL --devices-per-rank 2
check "devices per rank: bytes between ranks only" \
    has "rank 0: forward receives 2.0 KiB (2048 B), sends 2.0 KiB (2048 B)"
check "devices per rank: memory per device" \
    has "rank 0: memory total 12.1 KiB (12416 B) of 1.0 GiB (1073741824 B): fits (per device, 1/2 of it: 6.1 KiB)"

# ------------------------------------ the same bytes as --explain prints
for x in q k v dout; do
    "$LONGNET" gen --shape 2,96,3,8 --seed "$(printf %d "'$x")" --out "$x.npy" >/dev/null ||
        { echo "cannot generate inputs"; exit 99; }
done
# agree NAME R PLAN-OPTIONS -- RUN-OPTIONS: --explain on R cpu devices of
# weight 1 (no calibration: equal chunks, as the plan assumes) against the
# plan for R ranks.
agree() {
    name=$1 r=$2
    shift 2
    popts="" ropts=""
    while test "$1" != "--"; do popts="$popts $1"; shift; done
    shift
    ropts="$*"
    devs=cpu=1
    i=1
    while test "$i" -lt "$r"; do devs="$devs,cpu=1"; i=$((i + 1)); done
    # shellcheck disable=SC2086
    "$LONGNET" run --q q.npy --k k.npy --v v.npy --out o.npy --device "$devs" --explain \
        $ropts >"$tmp/explain.txt" 2>"$err" || { fail "$name: run --explain failed"; return; }
    # shellcheck disable=SC2086
    "$LONGNET" plan --tokens 96 --ranks "$r" --batch 2 --heads 3 --head-dim 8 \
        --mem-per-rank 1GiB $popts >"$out" 2>"$err" || { fail "$name: plan failed"; return; }
    explain_bytes "$tmp/explain.txt" >"$tmp/e.txt"
    plan_bytes "$out" forward >"$tmp/p.txt"
    check "$name: bytes per rank as --explain" same_lines "$tmp/e.txt" "$tmp/p.txt"
    explain_levels "$tmp/explain.txt" "$r" >"$tmp/el.txt"
    plan_levels "$out" >"$tmp/pl.txt"
    check "$name: bytes per level as --explain" same_lines "$tmp/el.txt" "$tmp/pl.txt"
}
agree "gather, causal, 3 ranks" 3 --segments 16,32,64 --dilations 1,2,4 --causal -- \
    --segments 16,32,64 --dilations 1,2,4 --causal
agree "ring (a dilation-1 level spans), 2 ranks" 2 --segments 16,96 --dilations 1,1 -- \
    --segments 16,96 --dilations 1,1
agree "finer than a segment, 4 ranks, grouped offsets" 4 --segments 32,96 --dilations 1,3 \
    --offsets grouped -- --segments 32,96 --dilations 1,3 --offsets grouped
agree "gather forced, 2 ranks" 2 --segments 16,96 --dilations 1,1 --algorithm gather -- \
    --segments 16,96 --dilations 1,1 --algorithm gather

# Backward: grad --explain's totals (K/V and the dK/dV sent back).
"$LONGNET" grad --q q.npy --k k.npy --v v.npy --dout dout.npy --dq dq.npy --dk dk.npy \
    --dv dv.npy --segments 16,32,64 --dilations 1,2,4 --causal --device cpu=1,cpu=1,cpu=1 \
    --explain >"$tmp/explain.txt" 2>"$err" || fail "grad --explain failed"
expect_ok "$LONGNET" plan --tokens 96 --ranks 3 --batch 2 --heads 3 --head-dim 8 \
    --mem-per-rank 1GiB --segments 16,32,64 --dilations 1,2,4 --causal --backward
explain_bytes "$tmp/explain.txt" >"$tmp/e.txt"
plan_bytes "$out" backward >"$tmp/p.txt"
check "backward: bytes per rank as grad --explain" same_lines "$tmp/e.txt" "$tmp/p.txt"

# The comparisons, shown able to fail: --explain's figure changed by one
# unit, and a level's figure moved to another rank.
sed 's/receives 3.0 KiB/receives 3.1 KiB/' "$tmp/explain.txt" >"$tmp/wrong.txt"
explain_bytes "$tmp/wrong.txt" >"$tmp/e.txt"
check "the wrong fixture changes --explain's text" not cmp -s "$tmp/explain.txt" "$tmp/wrong.txt"
check "a wrong --explain total is caught" not same_lines "$tmp/e.txt" "$tmp/p.txt"
plan_levels "$out" | sed 's/level 2 w0/level 2 w9/' >"$tmp/pl2.txt"
plan_levels "$out" >"$tmp/pl.txt"
check "a level's bytes on the wrong rank are caught" not same_lines "$tmp/pl.txt" "$tmp/pl2.txt"

# ------------------------------------------------- 10^9 tokens and beyond
# The paper's Figure 5 levels at N = 10^9 over 64 ranks: it fits 64-bit
# sizes, the last rank ends at N, and the bytes per rank of a fixed
# configuration do not depend on N (1M and 16M tokens, the issue's check).
expect_ok "$LONGNET" plan --tokens 1000000000 --ranks 64 --mem-per-rank 80GiB --causal \
    --segments 2048,15625000,1000000000 --dilations 1,7629,488281 --throughput 1e6 --backward
check "10^9 tokens: the last rank ends at N" grep -q "^rank 63: rows \[[0-9]*, 1000000000)" "$out"
check "10^9 tokens: a predicted time" grep -q "^predicted time: [0-9.e+]* s" "$out"
for n in 1048576 16777216; do
    expect_ok "$LONGNET" plan --tokens $n --ranks 4 --mem-per-rank 1TiB \
        --segments 2048,4096,8192,16384 --dilations 1,2,4,8 --heads 8 --backward
    grep '^rank [0-9]*: \(forward\|backward\) .*receives' "$out" >"$tmp/bytes.$n"
done
check "bytes per rank at N = 1M and 16M are equal" same_lines "$tmp/bytes.1048576" "$tmp/bytes.16777216"
check "... and the check can fail (a different configuration differs)" sh -c '
    "$1" plan --tokens 16777216 --ranks 4 --mem-per-rank 1TiB --segments 2048,4096,8192,32768 \
        --dilations 1,2,4,8 --heads 8 --backward | grep "^rank [0-9]*: \(forward\|backward\) .*receives" >"$2"
    ! cmp -s "$2" "$3"' sh "$LONGNET" "$tmp/bytes.other" "$tmp/bytes.1048576"
# 10^15 tokens: sizes still exact; the plan says it does not fit.
expect_fail "rank 0 needs 8.9 PiB (10000000000000000 B) but --mem-per-rank is 1.0 GiB (1073741824 B)" \
    "$LONGNET" plan --tokens 1000000000000000 --ranks 2 --mem-per-rank 1GiB --segments 2048,4096 \
    --dilations 1,2 --head-dim 1
check "a plan that does not fit is still printed" grep -q "DOES NOT FIT" "$out"
expect_fail "[1, 4611686018427387904, 1, 64] has more elements than fit in memory" "$LONGNET" plan --tokens 4611686018427387904 \
    --ranks 2 --mem-per-rank 1GiB --segments 2048 --dilations 1

# ---------------------------------------------------------------- --measure
# A real short run on the cpu backend (no timing asserted, only that the
# figures are there and used).
expect_ok "$LONGNET" plan --tokens 1048576 --ranks 2 --mem-per-rank 4GiB --segments 256,512 \
    --dilations 1,2 --measure --measure-tokens 1024 --device 'cpu{threads=1}' --backward
check "--measure reports what it ran" \
    grep -q "^measured: forward + backward of N = 1024 (B = 1) on --device cpu{threads=1}, median of 3 runs" "$out"
check "--measure gives a predicted time" grep -q "^predicted time: [0-9.e+-]* s" "$out"

# --------------------------------------------------------------- refusals
P="--ranks 2 --mem-per-rank 1GiB --segments 16,32 --dilations 1,2"
# shellcheck disable=SC2086
{
expect_usage_error "missing required option --tokens" "$LONGNET" plan $P
expect_usage_error "missing required option --mem-per-rank" "$LONGNET" plan --tokens 64 \
    --ranks 2 --segments 16 --dilations 1
expect_usage_error "missing required option --segments" "$LONGNET" plan --tokens 64 --ranks 2 \
    --mem-per-rank 1GiB --dilations 1
expect_usage_error "--frobnicate" "$LONGNET" plan --tokens 64 $P --frobnicate
expect_usage_error "--q" "$LONGNET" plan --tokens 64 $P --q q.npy
expect_usage_error "--throughput and --measure both given" "$LONGNET" plan --tokens 64 $P \
    --throughput 5 --measure
expect_usage_error "--device without --measure" "$LONGNET" plan --tokens 64 $P --device cpu
expect_usage_error "--measure-tokens without --measure" "$LONGNET" plan --tokens 64 $P \
    --measure-tokens 32
expect_fail "--tokens '0' is too small" "$LONGNET" plan --tokens 0 $P
expect_fail "--tokens '1e9' is not a whole number" "$LONGNET" plan --tokens 1e9 $P
expect_fail "--tokens '99999999999999999999' is too large" "$LONGNET" plan \
    --tokens 99999999999999999999 $P
expect_fail "--ranks '0' is too small" "$LONGNET" plan --tokens 64 --ranks 0 \
    --mem-per-rank 1GiB --segments 16 --dilations 1
expect_fail "--ranks 65 is more than --tokens 64" "$LONGNET" plan --tokens 64 --ranks 65 \
    --mem-per-rank 1GiB --segments 16 --dilations 1
expect_fail "--ranks 33 x --devices-per-rank 2 is more than 64 devices" "$LONGNET" plan \
    --tokens 100000 --ranks 33 --devices-per-rank 2 --mem-per-rank 1GiB --segments 16 --dilations 1
expect_fail "--ranks 2 x --devices-per-rank 3 devices for 5 tokens" "$LONGNET" plan --tokens 5 \
    --ranks 2 --devices-per-rank 3 --mem-per-rank 1GiB --segments 16 --dilations 1
expect_fail "--mem-per-rank '0' is zero" "$LONGNET" plan --tokens 64 --ranks 2 \
    --mem-per-rank 0 --segments 16 --dilations 1
expect_fail "--mem-per-rank '12XB' is not a number of bytes" "$LONGNET" plan --tokens 64 \
    --ranks 2 --mem-per-rank 12XB --segments 16 --dilations 1
expect_fail "--mem-per-rank '99999999PiB' does not fit in 64 bits" "$LONGNET" plan --tokens 64 \
    --ranks 2 --mem-per-rank 99999999PiB --segments 16 --dilations 1
expect_fail "--throughput '-1' is not a positive finite number" "$LONGNET" plan --tokens 64 $P \
    --throughput -1
expect_fail "--bandwidth 'nan' is not a positive finite number" "$LONGNET" plan --tokens 64 $P \
    --bandwidth nan --throughput 1
expect_fail "--heads '0' is too small" "$LONGNET" plan --tokens 64 $P --heads 0
expect_fail "algorithm 'sideways'" "$LONGNET" plan --tokens 64 $P --algorithm sideways
expect_fail "dilation" "$LONGNET" plan --tokens 64 --ranks 2 --mem-per-rank 1GiB \
    --segments 16,32 --dilations 2,2
expect_fail "--measure-tokens 128 is more than --tokens 64" "$LONGNET" plan --tokens 64 $P \
    --measure --measure-tokens 128
expect_fail "rank 0 needs 10.1 KiB (10368 B) but --mem-per-rank is 10.0 KiB (10240 B)" \
    "$LONGNET" plan --tokens 64 --ranks 2 --mem-per-rank 10KiB --segments 16,32,64 \
    --dilations 1,2,4 --head-dim 16
}

finish
