# cli_files.sh — what `longnet run` guarantees about files, as a hostile
# user tried it (issue 10): outputs that are devices, FIFOs or symlinks are
# never replaced by a regular file; O and LSE are committed together or not
# at all; a signal during the write leaves no temporary and ends the process
# by that signal; a replaced file keeps its mode; inputs that are FIFOs or
# hold float64 values float32 cannot hold are refused; a run too large for
# the memory is refused with the numbers; non-finite results are warned of.
. "${TESTS_SRCDIR:-.}/cli_lib.sh"

cd "$tmp" || exit 99

for x in q k v; do
    "$LONGNET" gen --shape 1,64,4,16 --out "$x.npy" --seed "$(printf %d "'$x")" ||
        { echo "cannot generate inputs"; exit 99; }
done
RUN="--q q.npy --k k.npy --v v.npy --segments 16,32 --dilations 1,2 --quiet"
# shellcheck disable=SC2086
"$LONGNET" run $RUN --out ref.npy --lse ref_lse.npy || { echo "reference run failed"; exit 99; }

# no_temporaries DIR — nothing named *.tmp.* is left in DIR.
no_temporaries() {
    test -z "$(find "$1" -name '*.tmp.*' 2>/dev/null)"
}

# ------------------------------------------------ outputs that are not files
if test -c /dev/null && test -w /dev/null; then
    # shellcheck disable=SC2086
    expect_ok "$LONGNET" run $RUN --out /dev/null --lse /dev/null
    check "/dev/null is still a character device" test -c /dev/null
fi
# shellcheck disable=SC2086
"$LONGNET" run $RUN --out /dev/stdout >piped.npy 2>"$err"
check "--out /dev/stdout into a file writes the file" cmp piped.npy ref.npy
# shellcheck disable=SC2086
"$LONGNET" run $RUN --out /dev/stdout 2>"$err" | cat >piped2.npy
check "--out /dev/stdout into a pipe writes the pipe" cmp piped2.npy ref.npy

mkfifo fifo.npy
# shellcheck disable=SC2086
expect_fail "no reader" "$LONGNET" run $RUN --out fifo.npy
check "a FIFO output stays a FIFO" test -p fifo.npy
timeout 60 cat fifo.npy >from_fifo.npy &
reader=$!
# shellcheck disable=SC2086
expect_ok "$LONGNET" run $RUN --out fifo.npy
wait "$reader"
check "a FIFO with a reader gets the whole file" cmp from_fifo.npy ref.npy
check "a FIFO output is still a FIFO afterwards" test -p fifo.npy

mkdir subdir
ln -s subdir/target.npy link.npy
printf 'old' >subdir/target.npy
# shellcheck disable=SC2086
expect_ok "$LONGNET" run $RUN --out link.npy
check "a symlinked output stays a symlink" test -L link.npy
check "the symlink's target is replaced" cmp subdir/target.npy ref.npy
ln -s subdir/new-target.npy dangling.npy
# shellcheck disable=SC2086
expect_ok "$LONGNET" run $RUN --out dangling.npy
check "a dangling symlink's target is created" cmp subdir/new-target.npy ref.npy
check "no temporary beside the symlinks or their targets" no_temporaries .
# Two outputs that are one file through a link (even a dangling one) would
# keep only the last written: refused, as the same name would be.
ln -s same-target.npy same-link.npy
# shellcheck disable=SC2086
expect_fail "are the same file" "$LONGNET" run $RUN --out same-link.npy --lse same-target.npy
check "nothing was created through the refused pair" test ! -e same-target.npy
ln -s q.npy q-link.npy
# shellcheck disable=SC2086
expect_fail "is the same file as the input --q" "$LONGNET" run $RUN --out q-link.npy

cp ref.npy mode.npy
chmod 600 mode.npy
# shellcheck disable=SC2086
expect_ok "$LONGNET" run $RUN --out mode.npy
check "a replaced output keeps its mode 0600" test "$(stat -c %a mode.npy)" = 600

mkdir lse_dir
# shellcheck disable=SC2086
expect_fail "lse_dir" "$LONGNET" run $RUN --out dir_case.npy --lse lse_dir
check "--lse a directory: no new --out" test ! -e dir_case.npy

# ----------------------------------------- all outputs committed, or none
"$LONGNET" gen --shape 3,5 --out old_o.npy --seed 5
cp old_o.npy old_o.orig
# shellcheck disable=SC2086
expect_fail "lse_dir" "$LONGNET" run $RUN --out old_o.npy --lse lse_dir
check "--lse a directory leaves the existing --out as it was" cmp old_o.npy old_o.orig
if test -c /dev/full; then
    # shellcheck disable=SC2086
    expect_fail "/dev/full" "$LONGNET" run $RUN --out old_o.npy --lse /dev/full
    check "--lse on a full device leaves the existing --out as it was" cmp old_o.npy old_o.orig
fi
# A file-size limit (a full disk as far as the writer can tell): the LSE
# (1 KiB here) fits, O (16 KiB) does not (4 KiB in dash's 512-byte blocks, 8 KiB in bash's); neither is replaced.
"$LONGNET" gen --shape 3,5 --out old_l.npy --seed 6
cp old_l.npy old_l.orig
# shellcheck disable=SC2086
(ulimit -f 8 && exec "$LONGNET" run $RUN --out old_o.npy --lse old_l.npy) >"$out" 2>"$err"
rc=$?
check "a write past the file-size limit fails with exit 1 (got $rc)" test "$rc" -eq 1
check "the failure names the file and the error" grep -q "old_o.npy: write failed" "$err"
check "a failed O write leaves the existing --out as it was" cmp old_o.npy old_o.orig
check "a failed O write leaves the existing --lse as it was" cmp old_l.npy old_l.orig
check "no temporary after failed writes" no_temporaries .

# ------------------------------------------------- signals during the write
# A signal raised the moment the temporaries exist and the first is written
# (a test hook), for each of the three signals the command handles.
for sig in INT TERM HUP; do
    # shellcheck disable=SC2086
    LONGNET_TEST_RAISE=SIG$sig "$LONGNET" run $RUN --out sig_o.npy --lse sig_l.npy \
        >"$out" 2>"$err"
    rc=$?
    want=$((128 + $(kill -l "$sig")))
    check "SIG$sig during the write ends with $want (got $rc)" test "$rc" -eq "$want"
    check "SIG$sig during the write leaves no temporary" no_temporaries .
    check "SIG$sig during the write commits no output" test ! -e sig_o.npy -a ! -e sig_l.npy
done
# A real signal from outside while the command is blocked in a write: the
# LSE (128 KiB) goes to a FIFO that is held open but never read, so the
# writer stops when the pipe is full, with O's temporary complete beside it.
"$LONGNET" gen --shape 1,8192,4,16 --out bq.npy --seed 1 || exit 99
mkfifo slow.npy
exec 3<>slow.npy
"$LONGNET" run --q bq.npy --k bq.npy --v bq.npy --segments 64 --dilations 1 --quiet \
    --out big_o.npy --lse slow.npy >"$out" 2>"$err" &
pid=$!
tries=0
while ! ls ./big_o.npy.tmp.* >/dev/null 2>&1 && kill -0 "$pid" 2>/dev/null &&
    test "$tries" -lt 3000; do
    sleep 0.01
    tries=$((tries + 1))
done
sleep 0.5
check "the run is blocked writing to the full FIFO" kill -0 "$pid"
# SIGTERM: a background job of a non-interactive shell starts with SIGINT
# ignored (POSIX), and the command keeps an inherited SIG_IGN as it was.
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rc=$?
exec 3<&-
check "SIGTERM from outside during the write ends with 143 (got $rc)" test "$rc" -eq 143
check "SIGTERM from outside leaves no temporary" no_temporaries .
check "SIGTERM from outside commits no output" test ! -e big_o.npy
rm -f bq.npy

# ------------------------------------------------------------------ inputs
mkfifo in_fifo.npy
# shellcheck disable=SC2086
expect_fail "in_fifo.npy: not a regular file (a FIFO)" "$LONGNET" run $RUN --q in_fifo.npy --out f.npy

# A float64 file whose last element (1e39) float32 cannot hold: refused with
# the file, the index and the value. Built byte by byte: magic, version
# 1.0, header length 118, the header padded to 128 bytes, then 4 doubles
# (1.0 and 1e39, little-endian).
{
    printf '\223NUMPY\001\000\166\000'
    printf "%-117s\n" "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1, 4), }"
    printf '\000\000\000\000\000\000\360\077%.0s' 1 2 3
    printf '\035\112\234\364\207\202\007\110'
} >big64.npy
expect_fail "index [0, 0, 0, 3]" "$LONGNET" run --q big64.npy --k big64.npy --v big64.npy \
    --segments 1 --dilations 1 --out f.npy
check "the float64 refusal names the file and the value" \
    grep -q "big64.npy: float64 value 1e+39 at index" "$err"

# --------------------------------------------------------- memory check
# Q, K, V and O of 64 MiB each cannot fit in a 200 MiB address space: the
# run is refused before reading, with the numbers. (A sanitizer build
# reserves terabytes of address space for its shadow memory and cannot
# start under such a limit at all: there the check is left to the plain
# build, and said so.)
if ! (ulimit -v 204800 && exec "$LONGNET" --version) >/dev/null 2>&1; then
    echo "NOTE: this build cannot start under ulimit -v 200 MiB (a sanitizer build); the memory check runs in the plain build"
else
"$LONGNET" gen --shape 1,65536,4,64 --out mq.npy --seed 2 || exit 99
(ulimit -v 204800 && exec "$LONGNET" run --q mq.npy --k mq.npy --v mq.npy --segments 64 \
    --dilations 1 --out m.npy) >"$out" 2>"$err"
rc=$?
check "a run larger than the memory is refused with exit 1 (got $rc)" test "$rc" -eq 1
check "the refusal gives what is needed and what is available" \
    grep -q "the run needs 256.0 MiB.*but only .* is available (RLIMIT_AS" "$err"
check "the refusal names --force" grep -q -- "--force" "$err"
(ulimit -v 204800 && exec "$LONGNET" run --q mq.npy --k mq.npy --v mq.npy --segments 64 \
    --dilations 1 --out m.npy --force) >"$out" 2>"$err"
rc=$?
check "--force goes on and fails cleanly for lack of memory (exit 1, got $rc)" test "$rc" -eq 1
check "--force's failure says out of memory" grep -qi "memory" "$err"
check "no output from runs out of memory" test ! -e m.npy
rm -f mq.npy
fi

# ------------------------------------------------- non-finite results
# One NaN in Q (row n=5, head 1, element 0): the run succeeds and warns with
# the count and the first row.
cp q.npy nanq.npy
hlen=$(od -An -tu2 -j8 -N2 nanq.npy | tr -d ' ')
printf '\000\000\300\177' | dd of=nanq.npy bs=1 seek=$((10 + hlen + 4 * (5 * 4 * 16 + 16))) \
    conv=notrunc 2>/dev/null
"$LONGNET" run --q nanq.npy --k k.npy --v v.npy --segments 16,32 --dilations 1,2 --quiet \
    --out nan_o.npy --lse nan_l.npy >"$out" 2>"$err"
rc=$?
check "a NaN input still runs (exit 0, got $rc)" test "$rc" -eq 0
check "the warning counts the non-finite values of O" \
    grep -q "warning: O 'nan_o.npy' holds 16 non-finite values" "$err"
check "the warning names the first row" grep -q "row b=0, n=5, h=1" "$err"
check "the LSE warning too" grep -q "warning: LSE 'nan_l.npy' holds 1 non-finite value;" "$err"

finish
