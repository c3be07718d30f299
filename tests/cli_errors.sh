# cli_errors.sh — the `longnet` command's error paths, as a user would hit
# them: each must fail with one line on stderr that names the bad value, and
# a failed run must never touch an existing output file.
. "${TESTS_SRCDIR:-.}/cli_lib.sh"

cd "$tmp" || exit 99

# Small valid inputs, so that each case below has exactly one thing wrong.
for x in q k v; do
    "$LONGNET" gen --shape 1,64,4,16 --out "$x.npy" --seed "$(printf %d "'$x")" ||
        { echo "cannot generate inputs"; exit 99; }
done

# run_bad SUBSTRING ARGS... — `longnet run` on the good inputs with ARGS.
run_bad() {
    want=$1
    shift
    expect_fail "$want" "$LONGNET" run --q q.npy --k k.npy --v v.npy "$@"
}
LEVELS="--segments 16,32,64 --dilations 1,2,4"

# ------------------------------------------------------------ configuration
run_bad "dilation 0" --segments 16,32 --dilations 1,0 --out o.npy
run_bad "segment length 0" --segments 0,32 --dilations 1,2 --out o.npy
run_bad "dilation 9" --segments 16,8 --dilations 1,9 --out o.npy
run_bad "'16,32,64'" --segments 16,32,64 --dilations 1,2 --out o.npy
run_bad "dilation 1" --segments 16,32 --dilations 2,4 --out o.npy
run_bad "x7" --segments 16,x7 --dilations 1,2 --out o.npy
run_bad "1.5" --segments 16,32 --dilations 1,1.5 --out o.npy
run_bad "-3" --segments 16,-3 --dilations 1,2 --out o.npy
run_bad "-2" --segments 16,32 --dilations 1,-2 --out o.npy
run_bad "99999999999999999999999" --segments 16,99999999999999999999999 --dilations 1,2 --out o.npy
run_bad "18446744073709551617" --segments 16,32 --dilations 1,18446744073709551617 --out o.npy
run_bad "--segments" --segments "" --dilations 1 --out o.npy
run_bad "--dilations" --segments 16 --dilations= --out o.npy
run_bad "16,,32" --segments 16,,32 --dilations 1,2,4 --out o.npy
run_bad "'1,2,'" --segments 16,32 --dilations 1,2, --out o.npy
run_bad "diagonal" $LEVELS --offsets diagonal --out o.npy
for s in 0 -1 abc nan inf 1e999 0.5x; do
    run_bad "--scale '$s'" $LEVELS --scale "$s" --out o.npy
done

# ------------------------------------------------------------------ inputs
"$LONGNET" gen --shape 1,32,4,16 --out k_short.npy
run_bad "k_short.npy" --segments 16 --dilations 1 --out o.npy --k k_short.npy
run_bad "[1, 32, 4, 16]" --segments 16 --dilations 1 --out o.npy --k k_short.npy

"$LONGNET" gen --shape 64,4,16 --out q3d.npy
expect_fail "q3d.npy" "$LONGNET" run --q q3d.npy --k q3d.npy --v q3d.npy \
    --segments 16 --dilations 1 --out o.npy

head -c 1000 q.npy >truncated.npy
run_bad "truncated.npy" --segments 16 --dilations 1 --out o.npy --q truncated.npy
head -c 30 q.npy >header_cut.npy
run_bad "header_cut.npy" --segments 16 --dilations 1 --out o.npy --q header_cut.npy

# A float16 file, which the library does not read: the magic, version 1.0,
# the header length (118, little-endian u16), the dictionary padded with
# spaces so that the whole header is 128 bytes with its final newline, then
# 8 half-precision ones (0x3c00).
printf '\223NUMPY\001\000\166\000' >half.npy
printf "%-117s\n" "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 4, 1, 2), }" >>half.npy
printf '\000\074\000\074\000\074\000\074\000\074\000\074\000\074\000\074' >>half.npy
check "the float16 fixture has 128 + 16 bytes" test "$(file_size half.npy)" -eq 144
run_bad "half.npy" --segments 4 --dilations 1 --out o.npy --q half.npy --k half.npy --v half.npy

run_bad "missing.npy" --segments 16 --dilations 1 --out o.npy --v missing.npy
printf 'not a numpy file at all\n' >text.npy
run_bad "text.npy" --segments 16 --dilations 1 --out o.npy --q text.npy

# ----------------------------------------------------------------- devices
run_bad "tpu" $LEVELS --device tpu --out o.npy
run_bad "cpu:7" $LEVELS --device cpu:7 --out o.npy
run_bad "cpu:x" $LEVELS --device cpu:x --out o.npy
run_bad "nosuchkernel" $LEVELS --kernel nosuchkernel --out o.npy

# ------------------------------------------------------------ command line
expect_usage_error "--out" "$LONGNET" run --q q.npy --k k.npy --v v.npy $LEVELS
expect_usage_error "--q" "$LONGNET" run --k k.npy --v v.npy $LEVELS --out o.npy
expect_usage_error "--segments" "$LONGNET" run --q q.npy --k k.npy --v v.npy \
    --dilations 1 --out o.npy
expect_usage_error "--bogus" "$LONGNET" run --q q.npy --k k.npy --v v.npy $LEVELS \
    --out o.npy --bogus
expect_usage_error "--bogus" "$LONGNET" run --bogus=1
expect_usage_error "--out" "$LONGNET" run --q q.npy --k k.npy --v v.npy $LEVELS --out
expect_usage_error "--causal" "$LONGNET" run --q q.npy --k k.npy --v v.npy $LEVELS \
    --causal=yes --out o.npy
expect_usage_error "stray" "$LONGNET" run --q q.npy --k k.npy --v v.npy $LEVELS \
    --out o.npy stray
expect_usage_error "frobnicate" "$LONGNET" frobnicate
expect_usage_error "--frobnicate" "$LONGNET" --frobnicate
expect_usage_error "command" "$LONGNET"
expect_usage_error "frobnicate" "$LONGNET" help frobnicate
expect_usage_error "--verbose" "$LONGNET" info --verbose

# --------------------------------------------------------------------- gen
expect_fail "'0'" "$LONGNET" gen --shape 2,0,3 --out g.npy
expect_fail "'x'" "$LONGNET" gen --shape 2,x,3 --out g.npy
expect_fail "'-4'" "$LONGNET" gen --shape -4 --out g.npy
expect_fail "99999999999999999999" "$LONGNET" gen --shape 99999999999999999999 --out g.npy
expect_fail "1,1,1,1,1,1,1,1,1" "$LONGNET" gen --shape 1,1,1,1,1,1,1,1,1 --out g.npy
expect_fail "gamma" "$LONGNET" gen --shape 4 --dist gamma --out g.npy
expect_fail "'-1'" "$LONGNET" gen --shape 4 --seed -1 --out g.npy
expect_usage_error "--shape" "$LONGNET" gen --out g.npy
expect_usage_error "--out" "$LONGNET" gen --shape 4
check "gen left no file behind after failing" test ! -e g.npy

# ------------------------------------- existing outputs survive a failed run
"$LONGNET" gen --shape 3,5 --out existing.npy --seed 99
cp existing.npy existing.orig
"$LONGNET" gen --shape 3,5 --out existing_lse.npy --seed 98
cp existing_lse.npy existing_lse.orig

run_bad "dilation 9" --segments 16,8 --dilations 1,9 --out existing.npy --lse existing_lse.npy
check "a bad configuration leaves --out untouched" cmp existing.npy existing.orig
check "a bad configuration leaves --lse untouched" cmp existing_lse.npy existing_lse.orig

run_bad "missing.npy" $LEVELS --q missing.npy --out existing.npy --lse existing_lse.npy
check "a missing input leaves --out untouched" cmp existing.npy existing.orig
check "a missing input leaves --lse untouched" cmp existing_lse.npy existing_lse.orig

run_bad "tpu" $LEVELS --device tpu --out existing.npy --lse existing_lse.npy
check "an unknown device leaves --out untouched" cmp existing.npy existing.orig

expect_fail "gamma" "$LONGNET" gen --shape 1,2,4 --out existing.npy --dist gamma
check "a failed gen leaves --out untouched" cmp existing.npy existing.orig
check "no temporary files are left beside the outputs" \
    test -z "$(ls -A | grep -v -e '\.npy$' -e '\.orig$' -e '^stdout$' -e '^stderr$' -e '^check.log$')"

# ------------------------------------------------------------ device lists
run_bad "entry 2 is empty" $LEVELS --device cpu,,cpu --out o.npy
run_bad "weight 'fast'" $LEVELS --device cpu=fast --out o.npy
run_bad "weight '-1'" $LEVELS --device cpu=-1,cpu=1 --out o.npy
run_bad "every device or to none" $LEVELS --device cpu=1,cpu --out o.npy
run_bad "'tpu'" $LEVELS --device cpu,tpu --out o.npy
run_bad "'spiral'" $LEVELS --device cpu,cpu --algorithm spiral --out o.npy
check "no output was written by refused device lists" test ! -e o.npy

# ------------------------------------------------------ outputs vs. inputs
cp q.npy q.orig
run_bad "q.npy" $LEVELS --out q.npy
run_bad "./k.npy" $LEVELS --out ./k.npy
run_bad "v.npy" $LEVELS --out o.npy --lse v.npy
run_bad "same file" $LEVELS --out o.npy --lse ./o.npy
check "refusing --out == --q left the input untouched" cmp q.npy q.orig
check "no output was written by refused runs" test ! -e o.npy

# ---------------------------------------------- messages (issue 10, item 16)
# A list of more than 64 entries: the echo is cut, the reason survives.
many=16; i=1; while test "$i" -lt 70; do many="$many,16"; i=$((i + 1)); done
run_bad "has more than 64 entries" --segments "$many" --dilations 1 --out o.npy
check "the cut echo ends with '...'" grep -q "16,1[6,]*\.\.\.' has more than 64" "$err"
devs=cpu; i=1; while test "$i" -lt 70; do devs="$devs,cpu"; i=$((i + 1)); done
run_bad "has more than 64 entries" $LEVELS --device "$devs" --out o.npy
# --scale below float32's range: the advice is one this command takes.
run_bad "leave --scale out for 1/sqrt(D)" $LEVELS --scale 1e-300 --out o.npy
check "no advice to pass 0, which --scale refuses" sh -c "! grep -q 'or 0 for' '$err'"
# Weights: huge ones share evenly (no "-nan%"), a subnormal one is a weight,
# one that underflows to 0 is named as too small; blanks around entries and
# weights are taken on both sides.
"$LONGNET" run --q q.npy --k k.npy --v v.npy $LEVELS --device cpu=1e308,cpu=1e308 --explain \
    --out o.npy >"$out" 2>"$err"
check "weights summing past DBL_MAX explain as 50% each" grep -q "weight 1e+308 (50.0%)" "$out"
check "no nan in the explained shares" sh -c "! grep -qi nan '$out'"
rm -f o.npy
"$LONGNET" run --q q.npy --k k.npy --v v.npy $LEVELS --device cpu=1e-308,cpu=1 --quiet \
    --out o.npy >"$out" 2>"$err"
check "a subnormal weight is accepted (exit $?)" test -e o.npy
rm -f o.npy
run_bad "'1e-400' of cpu is too small" $LEVELS --device cpu=1e-400,cpu=1 --out o.npy
run_bad "'1e999' of cpu is too large" $LEVELS --device cpu=1e999,cpu=1 --out o.npy
expect_ok "$LONGNET" run --q q.npy --k k.npy --v v.npy $LEVELS --device "cpu= 1,cpu=1 " --quiet --out o.npy
expect_ok "$LONGNET" run --q q.npy --k k.npy --v v.npy $LEVELS --device "cpu , cpu" --quiet --out o.npy
rm -f o.npy
# Each command names itself.
expect_fail "longnet gen: --shape '1,x'" "$LONGNET" gen --shape 1,x --out g.npy
expect_fail "longnet info: unknown option" "$LONGNET" info --bogus

finish
