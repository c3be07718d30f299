# cli_grad.sh — `longnet grad`, the backward on .npy files: its help, its
# refusals (each one line naming the bad value, exit 1, or 2 for the command
# line), its three outputs committed together or not at all, and its
# answers: the gradients' sizes, the same bytes with the forward's saved
# O and LSE as without, on one device and split over two. The values
# against the oracle are the C tests' business.
. "${TESTS_SRCDIR:-.}/cli_lib.sh"

cd "$tmp" || exit 99

for x in q k v dout; do
    "$LONGNET" gen --shape 1,64,4,16 --seed "$(printf %d "'$x")" --out "$x.npy" >/dev/null ||
        { echo "cannot generate inputs"; exit 99; }
done
"$LONGNET" run --q q.npy --k k.npy --v v.npy --segments 16,32,64 --dilations 1,2,4 \
    --out o.npy --lse lse.npy --quiet || { echo "the forward failed"; exit 99; }
LEVELS="--segments 16,32,64 --dilations 1,2,4"
IN="--q q.npy --k k.npy --v v.npy --dout dout.npy"
GRADS="--dq dq.npy --dk dk.npy --dv dv.npy"

# no_temporaries DIR — nothing named *.tmp.* is left in DIR.
no_temporaries() {
    test -z "$(find "$1" -name '*.tmp.*' 2>/dev/null)"
}

# npy_ok FILE NUMEL — a float32 .npy of NUMEL elements (as in cli_run.sh).
npy_ok() {
    size=$(file_size "$1")
    data=$(($2 * 4))
    test "$size" -ge $((data + 10)) && test $(((size - data) % 16)) -eq 0
}

# -------------------------------------------------------------------- help
expect_ok "$LONGNET" grad --help
check "'grad --help' shows its usage" grep -q "Usage: longnet grad" "$out"
for opt in --dout --out --lse --dq --dk --dv --segments --dilations --causal --offsets \
    --scale --device --kernel --algorithm --explain --force --quiet; do
    check "grad --help describes $opt" grep -q -e "$opt" "$out"
done
expect_ok "$LONGNET" help grad
check "'help grad' shows its usage" grep -q "Usage: longnet grad" "$out"
expect_ok "$LONGNET" --help
check "--help lists grad" grep -q '^  grad ' "$out"
check "--help has grad's usage" grep -q "Usage: longnet grad" "$out"

# ------------------------------------------------------- the command line
# shellcheck disable=SC2086
expect_usage_error "missing required option --dout" "$LONGNET" grad --q q.npy --k k.npy \
    --v v.npy $LEVELS $GRADS
# shellcheck disable=SC2086
expect_usage_error "missing required option --dq" "$LONGNET" grad $IN $LEVELS \
    --dk dk.npy --dv dv.npy
# shellcheck disable=SC2086
expect_usage_error "missing required option --dv" "$LONGNET" grad $IN $LEVELS \
    --dq dq.npy --dk dk.npy
# shellcheck disable=SC2086
expect_usage_error "missing required option --q" "$LONGNET" grad --k k.npy --v v.npy \
    --dout dout.npy $LEVELS $GRADS
# shellcheck disable=SC2086
expect_usage_error "missing required option --segments" "$LONGNET" grad $IN \
    --dilations 1 $GRADS
# shellcheck disable=SC2086
expect_usage_error "--out 'o.npy' given without --lse" "$LONGNET" grad $IN $LEVELS \
    --out o.npy $GRADS
# shellcheck disable=SC2086
expect_usage_error "--lse 'lse.npy' given without --out" "$LONGNET" grad $IN $LEVELS \
    --lse lse.npy $GRADS
# shellcheck disable=SC2086
expect_usage_error "unknown option '--bogus'" "$LONGNET" grad $IN $LEVELS $GRADS --bogus
check "nothing was written by the refused command lines" \
    test ! -e dq.npy -a ! -e dk.npy -a ! -e dv.npy

# ------------------------------------------------------------- bad values
# shellcheck disable=SC2086
expect_fail "--scale '0'" "$LONGNET" grad $IN $LEVELS --scale 0 $GRADS
check "a bad value exits 1" test "$rc" -eq 1
# shellcheck disable=SC2086
expect_fail "'interleaf'" "$LONGNET" grad $IN $LEVELS --offsets interleaf $GRADS
# shellcheck disable=SC2086
expect_fail "'sideways'" "$LONGNET" grad $IN $LEVELS --algorithm sideways $GRADS
# shellcheck disable=SC2086
expect_fail "nosuch" "$LONGNET" grad $IN $LEVELS --device nosuch $GRADS
# shellcheck disable=SC2086
expect_fail "--kernel 'fastest'" "$LONGNET" grad $IN $LEVELS --kernel fastest $GRADS
# shellcheck disable=SC2086
expect_fail "missing.npy" "$LONGNET" grad --q q.npy --k k.npy --v v.npy --dout missing.npy \
    $LEVELS $GRADS
# shellcheck disable=SC2086
expect_fail "dilation 40" "$LONGNET" grad $IN --segments 16,32 --dilations 1,40 $GRADS
check "nothing was written by the refused values" \
    test ! -e dq.npy -a ! -e dk.npy -a ! -e dv.npy

# ------------------------------------------------------------------ shapes
"$LONGNET" gen --shape 1,64,4,8 --out bad_do.npy >/dev/null
# shellcheck disable=SC2086
expect_fail "dO 'bad_do.npy' has shape [1, 64, 4, 8] but Q 'q.npy' has shape [1, 64, 4, 16]" \
    "$LONGNET" grad --q q.npy --k k.npy --v v.npy --dout bad_do.npy $LEVELS $GRADS
check "a dO shape mismatch exits 1" test "$rc" -eq 1
"$LONGNET" gen --shape 1,64,16 --out flat_do.npy >/dev/null
# shellcheck disable=SC2086
expect_fail "flat_do.npy" "$LONGNET" grad --q q.npy --k k.npy --v v.npy --dout flat_do.npy \
    $LEVELS $GRADS
# shellcheck disable=SC2086
expect_fail "O 'bad_do.npy' has shape" "$LONGNET" grad $IN $LEVELS --out bad_do.npy \
    --lse lse.npy $GRADS
"$LONGNET" gen --shape 1,64,4 --out bad_lse.npy >/dev/null
# shellcheck disable=SC2086
expect_fail "LSE 'bad_lse.npy' has shape [1, 64, 4]" "$LONGNET" grad $IN $LEVELS --out o.npy \
    --lse bad_lse.npy $GRADS
"$LONGNET" gen --shape 1,64,4,32 --out bad_v.npy >/dev/null
# shellcheck disable=SC2086
expect_fail "bad_v.npy" "$LONGNET" grad --q q.npy --k k.npy --v bad_v.npy --dout dout.npy \
    $LEVELS $GRADS
"$LONGNET" gen --shape 1,65,4,16 --out qlong.npy >/dev/null
# shellcheck disable=SC2086
expect_fail "at most their rows" "$LONGNET" grad --q qlong.npy --k k.npy --v v.npy \
    --dout qlong.npy $LEVELS $GRADS

# --------------------------------------------------------------- same files
# shellcheck disable=SC2086
expect_fail "--dq 'q.npy' is the same file as the input --q" "$LONGNET" grad $IN $LEVELS \
    --dq q.npy --dk dk.npy --dv dv.npy
# shellcheck disable=SC2086
expect_fail "--dv 'dout.npy' is the same file as the input --dout" "$LONGNET" grad $IN \
    $LEVELS --dq dq.npy --dk dk.npy --dv dout.npy
# shellcheck disable=SC2086
expect_fail "--dk './lse.npy' is the same file as the input --lse" "$LONGNET" grad $IN \
    $LEVELS --out o.npy --lse lse.npy --dq dq.npy --dk ./lse.npy --dv dv.npy
ln -s o.npy o-link.npy
# shellcheck disable=SC2086
expect_fail "is the same file as the input --out" "$LONGNET" grad $IN $LEVELS --out o.npy \
    --lse lse.npy --dq o-link.npy --dk dk.npy --dv dv.npy
# shellcheck disable=SC2086
expect_fail "--dq 'same.npy' and --dk 'same.npy' are the same file" "$LONGNET" grad $IN \
    $LEVELS --dq same.npy --dk same.npy --dv dv.npy
# shellcheck disable=SC2086
expect_fail "--dk 'same.npy' and --dv './same.npy' are the same file" "$LONGNET" grad $IN \
    $LEVELS --dq dq.npy --dk same.npy --dv ./same.npy
check "nothing was written by the refused paths" \
    test ! -e dq.npy -a ! -e dk.npy -a ! -e dv.npy -a ! -e same.npy

# --------------------------------------------------- a device without backward
# The picky fixture (tests/faulty): the CPU backend behind a plugin table
# without the backward slot. The forward runs on it; a backward on it alone
# is refused by the library, naming the device (in a list beside a device
# with a backward it is left out with a warning: below).
fwd="$(dirname "$(dirname "$LONGNET")")/tests/faulty"
cpu_module="$(dirname "$(dirname "$LONGNET")")/backends/cpu/.libs/longnet-cpu.so"
if ls "$fwd"/*.la >/dev/null 2>&1 && test -f "$cpu_module"; then
    FWD_ENV="LONGNET_PLUGIN_PATH=$fwd LONGNET_FAULTY_INNER=$cpu_module LONGNET_FAULTY_DEVICES=1"
    # shellcheck disable=SC2086
    expect_ok env $FWD_ENV "$LONGNET" run --q q.npy --k k.npy --v v.npy $LEVELS \
        --device picky --out fwd_o.npy --quiet
    # shellcheck disable=SC2086
    expect_fail "device picky:0 does not support the backward pass" env $FWD_ENV \
        "$LONGNET" grad $IN $LEVELS --device picky $GRADS
    check "a device without backward exits 1" test "$rc" -eq 1
    check "no gradient from a refused device" test ! -e dq.npy -a ! -e dk.npy -a ! -e dv.npy
else
    fail "the picky fixture is built ($fwd) beside the CPU module ($cpu_module)"
fi

# ----------------------------------------------------------- memory check
# Eight tensors of 64 MiB (Q, K, V, dO, O and the three gradients) cannot
# fit in a 200 MiB address space: refused before reading, with the numbers.
if ! (ulimit -v 204800 && exec "$LONGNET" --version) >/dev/null 2>&1; then
    echo "NOTE: this build cannot start under ulimit -v 200 MiB (a sanitizer build); the memory check runs in the plain build"
else
    "$LONGNET" gen --shape 1,65536,4,64 --out mq.npy --seed 2 >/dev/null || exit 99
    (ulimit -v 204800 && exec "$LONGNET" grad --q mq.npy --k mq.npy --v mq.npy --dout mq.npy \
        --segments 64 --dilations 1 --dq m1.npy --dk m2.npy --dv m3.npy) >"$out" 2>"$err"
    rc=$?
    check "a backward larger than the memory is refused with exit 1 (got $rc)" test "$rc" -eq 1
    check "the refusal counts eight tensors and the LSE" \
        grep -q "^longnet grad: the run needs 513.0 MiB (Q, K, V, dO, O, dQ, dK and dV 64.0 MiB each as float32, LSE) but only .* is available" "$err"
    check "the refusal names --force" grep -q -- "--force" "$err"
    check "no gradient from a refused run" test ! -e m1.npy -a ! -e m2.npy -a ! -e m3.npy
    rm -f mq.npy
fi

# ------------------------------------------------------------ the answers
# shellcheck disable=SC2086
expect_ok "$LONGNET" grad $IN $LEVELS --dq probe_dq.npy --dk probe_dk.npy --dv probe_dv.npy --quiet

# A device without backward in a list: left out with one warning naming
# it (the library's placement), the others take its rows.
if test -n "${FWD_ENV:-}"; then
    # shellcheck disable=SC2086
    env $FWD_ENV "$LONGNET" grad $IN $LEVELS --out o.npy --lse lse.npy \
        --device cpu=1,picky=1 --dq fw_dq.npy --dk fw_dk.npy --dv fw_dv.npy --quiet \
        >"$out" 2>"$err"
    rc=$?
    check "a list with a device without backward still runs (exit $rc)" test "$rc" -eq 0
    check "... with one warning naming the device left out" sh -c "test \"\$(wc -l <'$err')\" -eq 1 &&
        grep -q '^longnet grad: warning: device picky:0 does not support the backward pass.*left out' '$err'"
    check "... and the one device's answer" cmp fw_dq.npy probe_dq.npy
fi

golden="${LONGNET_GOLDEN_DIR:-}/basic"
if test -n "${LONGNET_GOLDEN_DIR:-}" && test -f "$golden/dout.npy"; then
    G="--q $golden/q.npy --k $golden/k.npy --v $golden/v.npy --dout $golden/dout.npy"
    G="$G --segments 16,32,64 --dilations 1,2,4 --scale 0.25"
    for dev in cpu cpu=1,cpu=1; do
        # shellcheck disable=SC2086
        expect_ok "$LONGNET" run --q "$golden/q.npy" --k "$golden/k.npy" --v "$golden/v.npy" \
            --segments 16,32,64 --dilations 1,2,4 --scale 0.25 --device $dev \
            --out "g_o_$dev.npy" --lse "g_l_$dev.npy" --quiet
        # shellcheck disable=SC2086
        expect_ok "$LONGNET" grad $G --device $dev --dq "a_dq_$dev.npy" --dk "a_dk_$dev.npy" \
            --dv "a_dv_$dev.npy"
        check "golden basic on $dev: the summary has the time" grep -q '^time .* ms' "$out"
        check "golden basic on $dev: the forward ran first" grep -q '^forward run first' "$out"
        for g in dq dk dv; do
            check "golden basic on $dev: $g is [1, 64, 4, 16] float32" npy_ok "a_${g}_$dev.npy" 4096
            check "golden basic on $dev: the summary names $g" \
                grep -q "^$g      a_${g}_$dev.npy \[1, 64, 4, 16\]" "$out"
        done
        # shellcheck disable=SC2086
        expect_ok "$LONGNET" grad $G --device $dev --out "g_o_$dev.npy" --lse "g_l_$dev.npy" \
            --dq "b_dq_$dev.npy" --dk "b_dk_$dev.npy" --dv "b_dv_$dev.npy"
        check "golden basic on $dev: the summary names the saved forward" \
            grep -q "^forward saved: out g_o_$dev.npy, lse g_l_$dev.npy" "$out"
        for g in dq dk dv; do
            check "golden basic on $dev: $g with the saved O and LSE is the same bytes" \
                cmp "a_${g}_$dev.npy" "b_${g}_$dev.npy"
        done
    done
else
    fail "the golden cases are there with dout.npy (LONGNET_GOLDEN_DIR='${LONGNET_GOLDEN_DIR:-}')"
fi

# Two devices whose chunks hold every segment (32 rows each, segments of
# 16 and 32: no transfer), and two with a 1:3 split (segments span them:
# dK/dV sent back): the saved O and LSE give the same bytes as the forward
# run first.
for dev in cpu=1,cpu=1 cpu=1,cpu=3; do
    S="--segments 16,32 --dilations 1,2 --device $dev"
    # shellcheck disable=SC2086
    "$LONGNET" run --q q.npy --k k.npy --v v.npy $S --out so.npy --lse slse.npy --quiet
    # shellcheck disable=SC2086
    expect_ok "$LONGNET" grad $IN $S --dq s1q.npy --dk s1k.npy --dv s1v.npy --quiet
    # shellcheck disable=SC2086
    expect_ok "$LONGNET" grad $IN $S --out so.npy --lse slse.npy --dq s2q.npy --dk s2k.npy \
        --dv s2v.npy --quiet
    check "split over $dev: the saved O and LSE give the same bytes" \
        sh -c 'cmp s1q.npy s2q.npy && cmp s1k.npy s2k.npy && cmp s1v.npy s2v.npy'
done

# --quiet, --explain, the options of run.
# shellcheck disable=SC2086
expect_ok "$LONGNET" grad $IN $LEVELS $GRADS --quiet
check "--quiet prints nothing" test ! -s "$out"
check "the same backward twice gives the same dQ" cmp dq.npy probe_dq.npy
# shellcheck disable=SC2086
expect_ok "$LONGNET" grad $IN $LEVELS --causal --offsets grouped --scale 0.3 \
    --device cpu=1,cpu=1 --segments 16 --dilations 1 --explain --dq dqc.npy --dk dkc.npy --dv dvc.npy
check "--explain prints the chunks" grep -q "rows \\[0, " "$out"
check "--explain prints the backward's graph" grep -q "SEGMENT_ATTENTION_BACKWARD" "$out"
# shellcheck disable=SC2086
expect_ok "$LONGNET" grad $IN $LEVELS --causal --dq dqc.npy --dk dkc.npy --dv dvc.npy --quiet
check "--causal changes dK" sh -c '! cmp -s dk.npy dkc.npy'

# Q of fewer rows than K and V: dQ has Q's rows, dK and dV those of K, V.
"$LONGNET" gen --shape 1,16,4,16 --out ql.npy >/dev/null
# shellcheck disable=SC2086
expect_ok "$LONGNET" grad --q ql.npy --k k.npy --v v.npy --dout ql.npy --segments 16,32 \
    --dilations 1,2 --dq lq.npy --dk lk.npy --dv lv.npy
check "16 query rows give dQ of [1, 16, 4, 16]" grep -q "^dq      lq.npy \[1, 16, 4, 16\]" "$out"
check "16 query rows give dK of [1, 64, 4, 16]" grep -q "^dk      lk.npy \[1, 64, 4, 16\]" "$out"

# ------------------------------------------ all outputs committed, or none
"$LONGNET" gen --shape 3,5 --out old.npy --seed 5 >/dev/null
for g in dq dk dv; do cp old.npy "keep_$g.npy"; done
# shellcheck disable=SC2086
expect_fail "no-such-dir/dv.npy" "$LONGNET" grad $IN $LEVELS --dq keep_dq.npy \
    --dk keep_dk.npy --dv no-such-dir/dv.npy
check "--dv in a missing directory leaves --dq and --dk as they were" \
    sh -c 'cmp keep_dq.npy old.npy && cmp keep_dk.npy old.npy'
# shellcheck disable=SC2086
expect_fail "no-such-dir/dv.npy" "$LONGNET" grad $IN $LEVELS --dq new_dq.npy --dk new_dk.npy \
    --dv no-such-dir/dv.npy
check "--dv in a missing directory creates no --dq, --dk" test ! -e new_dq.npy -a ! -e new_dk.npy
if test -c /dev/full; then
    # shellcheck disable=SC2086
    expect_fail "/dev/full" "$LONGNET" grad $IN $LEVELS --dq keep_dq.npy --dk keep_dk.npy \
        --dv /dev/full
    check "--dv on a full device leaves --dq and --dk as they were" \
        sh -c 'cmp keep_dq.npy old.npy && cmp keep_dk.npy old.npy'
fi
check "no temporary after failed commits" no_temporaries .
for sig in INT TERM HUP; do
    # shellcheck disable=SC2086
    LONGNET_TEST_RAISE=SIG$sig "$LONGNET" grad $IN $LEVELS --dq sig_q.npy --dk sig_k.npy \
        --dv sig_v.npy >"$out" 2>"$err"
    rc=$?
    want=$((128 + $(kill -l "$sig")))
    check "SIG$sig during the write ends with $want (got $rc)" test "$rc" -eq "$want"
    check "SIG$sig during the write leaves no temporary" no_temporaries .
    check "SIG$sig during the write commits no gradient" \
        test ! -e sig_q.npy -a ! -e sig_k.npy -a ! -e sig_v.npy
done

finish
