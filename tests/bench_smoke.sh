# bench_smoke.sh — longnet-bench runs a tiny matrix and a tiny Figure-5
# sweep and writes what it promises: the table, CSV with its header, JSON
# with its keys, the Figure-5 files; --explain prints plans and runs nothing. It checks files and fields, never speed
# (DESIGN §3: performance is measured in bench/, not asserted in tests).
. "${TESTS_SRCDIR:-.}/cli_lib.sh"

if test -z "$LONGNET_BENCH" || ! test -x "$LONGNET_BENCH"; then
    echo "LONGNET_BENCH is not set to the built longnet-bench ('$LONGNET_BENCH'); skipping"
    exit 77
fi
cd "$tmp" || exit 99

# bench_fail SUBSTRING STATUS COMMAND... — fails with that exit status and
# one line on stderr, "longnet-bench: ...", that contains SUBSTRING.
bench_fail() {
    want=$1
    want_rc=$2
    shift 2
    desc="fails ($want_rc) naming '$want': $*"
    "$@" >"$out" 2>"$err"
    rc=$?
    lines=$(awk 'END { print NR }' "$err")
    if test "$rc" -ne "$want_rc"; then
        fail "$desc" "exit status $rc, expected $want_rc"
    elif test "$lines" -ne 1; then
        fail "$desc" "$lines lines on stderr, expected exactly 1"
    elif ! grep -q '^longnet-bench: ' "$err"; then
        fail "$desc" "stderr does not start with 'longnet-bench: '"
    elif ! grep -F -q -e "$want" "$err"; then
        fail "$desc" "stderr does not contain '$want'"
    else
        pass "$desc"
    fi
}

# The smallest useful cells: N=256, H=1, D=16, two small levels.
tiny="--device cpu --lengths 256 --repeat 1 --warmup 0 --heads 1 --dim 16
      --segments 64,128 --dilations 1,2 --check-length 128 --quiet"

# ------------------------------------------------------------------ help
expect_ok "$LONGNET_BENCH" --help
for opt in --device --kernel --config --segments --dilations --heads --dim --lengths \
    --causal --repeat --warmup --max-seconds --max-memory --check-length --csv --json \
    --outdir --figure5 --matrix --scaling --tokens-per-batch --scaling-max-length \
    --explain --pass --peer --peer-python; do
    check "--help describes $opt" grep -q -e "$opt" "$out"
done
check "--help says how a backward's FLOPs are counted" \
    sh -c "grep -q '2.5 times the forward' '$out' && grep -q 'FlashAttention-2' '$out'"
expect_ok "$LONGNET_BENCH" --version
check "--version names the version" grep -q '^longnet-bench [0-9]' "$out"

# -------------------------------------------------------- bad command lines
bench_fail "--frobnicate" 2 "$LONGNET_BENCH" --frobnicate
check "a usage error points at longnet-bench --help" grep -q "see 'longnet-bench --help'" "$err"
bench_fail "--dilations" 2 "$LONGNET_BENCH" --segments 64
bench_fail "'0'" 1 "$LONGNET_BENCH" --lengths 256,0
bench_fail "'x'" 1 "$LONGNET_BENCH" --repeat x
bench_fail "'sometimes'" 1 "$LONGNET_BENCH" --causal sometimes
bench_fail "'sparse'" 1 "$LONGNET_BENCH" --config paper,sparse
bench_fail "unknown pass 'sideways'" 1 "$LONGNET_BENCH" --pass forward,sideways
bench_fail "'12Q'" 1 "$LONGNET_BENCH" --max-memory 12Q
bench_fail "dilation" 1 "$LONGNET_BENCH" --segments 64,128 --dilations 2,4
bench_fail "'tpu'" 1 "$LONGNET_BENCH" --device cpu,tpu
bench_fail "'turbo'" 1 "$LONGNET_BENCH" --device cpu --kernel turbo
bench_fail "power of two" 1 "$LONGNET_BENCH" --figure5 --tokens-per-batch 12288
bench_fail "less than 8192" 1 "$LONGNET_BENCH" --figure5 --tokens-per-batch 4096

bench_fail "--csv" 2 "$LONGNET_BENCH" --explain --csv e.csv
bench_fail "needs two devices" 1 "$LONGNET_BENCH" --device cpu+
bench_fail "'tpu'" 1 "$LONGNET_BENCH" --device cpu+tpu

# A group: one sequence split over two workers by the scheduler.
# shellcheck disable=SC2086
expect_ok "$LONGNET_BENCH" --matrix $tiny --device cpu+cpu --csv g.csv
check "a device group runs as one cell" sh -c "grep -c '^matrix,cpu+cpu,.*,ok,' g.csv | grep -qx 2"

# ---------------------------------------------------------------- explain
# The plan of every cell, nothing run. A group of two workers (the same CPU
# twice, which any machine has) with the paper's levels at N = 8192: two
# chunks of 4096 rows, and the levels of 8192 rows and more span both, so
# the plan has transfers. expect_ok: nothing on stderr, so no progress line
# ("cells planned", "running") and no roofline was measured.
expect_ok "$LONGNET_BENCH" --explain --matrix --device cpu+cpu --config paper --lengths 8192 \
    --causal no --heads 1 --dim 16
check "explain names the cell" \
    grep -q '^== matrix cpu+cpu fast paper non-causal N=8192: B=1 H=1 D=16, levels 2048/1 ' "$out"
check "explain explains one cell" sh -c "grep -c '^== ' '$out' | grep -qx 1"
check "explain prints the graph" grep -q '^graph: ' "$out"
check "explain prints the transfers" grep -q '^transfers (' "$out"
check "a level's segment spans the two chunks" grep -q 'spanning segment' "$out"
check "explain prints the bytes per device" grep -q '^bytes per device' "$out"
check "explain runs no cell: no table, no roofline" \
    sh -c "! grep -q -e 'median ms' -e '^roofline' -e 'no cells ran' '$out'"
# A cell the memory budget would skip is explained too, and says so.
# shellcheck disable=SC2086
expect_ok "$LONGNET_BENCH" --explain --matrix $tiny --lengths 256,1024 --causal yes \
    --max-memory 100K
check "explain explains the cells the budget skips" sh -c "grep -c '^== ' '$out' | grep -qx 2"
check "explain says the budget would skip it" \
    grep -q '^== matrix cpu:0 fast custom causal N=1024: .*(a run skips it: .*--max-memory' "$out"
# A plan the library refuses (B x N x H overflows): the cell and the
# library's message are named, and the bench fails at the end.
"$LONGNET_BENCH" --explain --matrix --device cpu --config dense --causal no \
    --lengths 1099511627776 --batch 1048576 --heads 1048576 >"$out" 2>"$err"
check "a failed explain exits 1" test $? -eq 1
check "a failed explain names the cell and the library's message" grep -q \
    '^longnet-bench: matrix cpu:0 fast dense non-causal N=1099511627776: explain failed: .*more elements than fit' \
    "$err"
check "a failed explain is counted at the end" grep -q '^longnet-bench: 1 cell could not be explained' "$err"

# ---------------------------------------------------------- a backward cell
# One forward and one backward cell of the same series: the backward is
# timed with the saved O and LSE, counts 2.5 times the forward's FLOPs for
# the same pairs, holds twice the tensors, and is checked against the CPU
# reference kernel's backward (dQ, dK, dV).
# shellcheck disable=SC2086
expect_ok "$LONGNET_BENCH" --matrix $tiny --causal no --pass forward,backward --csv b.csv
check "the table has a backward row" grep -q '^cpu:0 *fast *custom *no *backward ' "$out"
check "the table has a forward row" grep -q '^cpu:0 *fast *custom *no *forward ' "$out"
check "the header says how a backward is counted" grep -q '^backward cells: .*2.5 times' "$out"
check "the table says both passes ran" grep -q '^matrix: forward and backward, B=1' "$out"
# field NAME ROW-PATTERN — the CSV field NAME of the row matching ROW-PATTERN.
field() {
    grep -v '^#' b.csv | awk -F, -v name="$1" -v pat="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) col = i; next }
        $0 ~ pat { print $col; exit }'
}
fwd_flops=$(field flops ',forward,')
bwd_flops=$(field flops ',backward,')
check "the backward cell ran (status $(field status ',backward,'))" \
    test "$(field status ',backward,')" = ok
check "backward FLOPs are 2.5 x forward's ($bwd_flops, $fwd_flops)" \
    test "$bwd_flops" -gt 0 -a $((bwd_flops * 2)) -eq $((fwd_flops * 5))
check "the backward holds twice the tensors" \
    test "$(field qkvo_bytes ',backward,')" -eq $(($(field qkvo_bytes ',forward,') * 2))
check "the backward was checked against the reference ($(field max_abs_err ',backward,'))" \
    awk -v e="$(field max_abs_err ',backward,')" 'BEGIN { exit !(e != "" && e + 0 < 1e-3) }'
check "the backward has tokens/s and GFLOP/s" \
    sh -c "test -n '$(field tokens_per_s ',backward,')' && test -n '$(field gflops ',backward,')'"
# shellcheck disable=SC2086
expect_ok "$LONGNET_BENCH" --explain --matrix $tiny --causal no --pass backward
check "explain names a backward cell" \
    grep -q '^== matrix cpu:0 fast custom non-causal backward N=256' "$out"
check "a backward cell's plan is the backward's" grep -q 'SEGMENT_ATTENTION_BACKWARD' "$out"

# ------------------------------------------------------------ a tiny matrix
# shellcheck disable=SC2086
expect_ok "$LONGNET_BENCH" --matrix $tiny --csv m.csv --json m.json
check "the table has its header" grep -q 'device.*kernel.*config.*causal.*GFLOP/s.*%SGEMM.*max|err|' "$out"
check "the table has a causal and a non-causal cell" \
    sh -c "grep -c '^cpu:0 *fast *custom' '$out' | grep -qx 2"
check "the header states how FLOPs are counted" grep -q '4\*D FLOPs per (query, key) pair' "$out"
check "the output says where the CSV went" grep -q '^csv: m.csv' "$out"

header=sweep,device,device_name,device_kind,kernel,config,pass,causal,offsets,batch,length,heads,dim,levels,pairs,flops,warmups,repeats,median_ms,min_ms,max_ms,tokens_per_s,gflops,sgemm_gflops,sgemm_fraction,sgemm_core,sgemm_suspect,sgemm_suspect_reason,peak_rss_bytes,qkvo_bytes,check_length,max_abs_err,wall_s,status,message,peer,peer_median_ms,peer_ratio,peer_max_abs_err
check "m.csv exists" test -s m.csv
check "m.csv has the header" sh -c "grep -v '^#' m.csv | head -n 1 | grep -qx '$header'"
check "m.csv has two ok rows" sh -c "grep -c '^matrix,cpu:0,.*,ok,' m.csv | grep -qx 2"
check "m.csv describes the machine" grep -q '^# machine: ' m.csv
check "m.csv describes the device" grep -q '^# device: cpu:0' m.csv
check "m.csv names the roofline" grep -q '^# roofline: ' m.csv
if grep -q '^# roofline: none' m.csv; then
    echo "built without OpenBLAS: the roofline's metadata is not checked"
else
    check "m.csv names the core used" grep -q '^# roofline_core: [A-Za-z]' m.csv
    check "m.csv names OpenBLAS's own choice" grep -q '^# roofline_openblas_choice: [A-Za-z]' m.csv
    check "m.csv says the roofline was checked" grep -q '^# roofline_checked: yes' m.csv
    check "m.csv lists the core types tried" grep -q '^# roofline_tried: own choice ' m.csv
    check "m.csv says what OPENBLAS_CORETYPE was inherited" \
        grep -q '^# roofline_environment: OPENBLAS_CORETYPE' m.csv
    check "the table header names the core used" grep -q "^roofline .*, core [A-Za-z]" "$out"
    check "the table header names OpenBLAS's own choice" grep -q "OpenBLAS's own choice: [A-Za-z]" "$out"
fi
# The exact pair count: 64/1 gives 4 segments of 64 rows, 128/2 gives 2 of 64.
check "pairs are counted exactly (non-causal 24576)" grep -q ',64/1 128/2,24576,' m.csv
check "pairs are counted exactly (causal 12480)" grep -q ',64/1 128/2,12480,' m.csv
check "m.json exists" test -s m.json
for key in longnet_bench machine cpu_model cores memory_bytes longnet_version devices \
    plugins kernels roofline settings cells stops median_ms tokens_per_s gflops \
    sgemm_fraction sgemm_core sgemm_suspect sgemm_suspect_reason peak_rss_bytes max_abs_err \
    pass core openblas_choice checked inherited_coretype candidates; do
    check "m.json has \"$key\"" grep -q "\"$key\":" m.json
done
if command -v python3 >/dev/null 2>&1; then
    check "m.json is valid JSON with two cells" python3 -c \
        "import json,sys; d=json.load(open('m.json')); sys.exit(len(d['cells'])!=2)"
fi

# The reference kernel checked against itself: exactly 0.
# shellcheck disable=SC2086
expect_ok "$LONGNET_BENCH" --matrix $tiny --kernel reference --causal yes --csv r.csv
check "the reference kernel's error is 0" grep -q ',reference,custom,.*,128,0,[0-9.]*,ok,' r.csv

# ------------------------------------------------- a roofline too slow
# The test hook makes the bench measure only OpenBLAS's Prescott (SSE3)
# kernels, as OpenBLAS itself does on a CPU it does not know, and an
# inherited OPENBLAS_CORETYPE must not change what is measured. Whether the
# fast kernel beats Prescott SGEMM is a matter of speed, which tests do not
# assert: every fraction above 1.0 must be flagged and no other, and where
# none is above 1.0 this run says so.
if ! grep -q '^# roofline: none' m.csv; then
    LONGNET_BENCH_SGEMM_CORES=Prescott OPENBLAS_CORETYPE=Haswell "$LONGNET_BENCH" --matrix \
        --device cpu --kernel fast --config dense --lengths 2048 --heads 1 --causal no \
        --repeat 1 --warmup 1 --check-length 128 --quiet --csv s.csv --json s.json \
        >"$out" 2>"$err"
    check "a slow roofline is not a failure" test $? -eq 0
    check "the hook's core is the one used" grep -q '^# roofline_core: Prescott' s.csv
    check "the inherited OPENBLAS_CORETYPE is reported and ignored" \
        grep -q '^# roofline_environment: OPENBLAS_CORETYPE=Haswell inherited, ignored' s.csv
    check "the JSON names the core used" grep -q '"core": "Prescott"' s.json
    check "the JSON names OpenBLAS's own choice" grep -q '"openblas_choice": "[A-Za-z]' s.json
    if command -v python3 >/dev/null 2>&1; then
        check "every fraction above 1.0 is flagged in the JSON, with its reason, and no other" \
            python3 -c "
import json, sys
d = json.load(open('s.json'))
for c in d['cells']:
    f = c['sgemm_fraction']
    if f is None or bool(c['sgemm_suspect']) != (f > 1.0) or bool(c['sgemm_suspect_reason']) != (f > 1.0):
        sys.exit(1)"
    fi
    fraction=$(awk -F, '!/^#/ && $1 == "matrix" { print $25 }' s.csv)
    if awk -v f="$fraction" 'BEGIN { exit !(f > 1.0) }'; then
        check "a fraction above 1.0 is marked suspect in the table" grep -q '% suspect' "$out"
        check "the table says why it is suspect" grep -q '^suspect: 1 fraction above 1.0' "$out"
        check "the CSV flags it" grep -q ',Prescott,1,"above 1.0' s.csv
    else
        echo "the fast kernel ran at $fraction of Prescott SGEMM here: nothing to flag"
        check "a fraction at most 1.0 is not marked suspect" sh -c "! grep -q 'suspect' '$out'"
    fi
fi

# ---------------------------------------------------------------- budget
# shellcheck disable=SC2086
"$LONGNET_BENCH" --matrix $tiny --lengths 256,1024 --max-memory 100K --json b.json \
    >"$out" 2>"$err"
check "a memory budget is not a failure" test $? -eq 0
check "the stop is said on stderr" grep -q 'budget: .*N=1024.*--max-memory' "$err"
check "the stop is in the table's notes" grep -q 'stopped early' "$out"
check "the stop is in the JSON" grep -q '"budget: ' b.json

# ------------------------------------------------- outputs are atomic
echo keep >kept.csv
# shellcheck disable=SC2086
bench_fail "no-such-dir/m.csv" 1 "$LONGNET_BENCH" --matrix $tiny --csv no-such-dir/m.csv
check "no temporary file is left behind" sh -c "! ls -a | grep -q tmp"

# --------------------------------------------------------- a tiny Figure 5
# T = 16384 tokens per batch: N = 8192 with B = 2, N = 16384 with B = 1.
expect_ok "$LONGNET_BENCH" --figure5 --device cpu --tokens-per-batch 16384 --heads 1 \
    --dim 16 --repeat 1 --warmup 0 --check-length 128 --quiet --outdir f5
check "figure5.csv exists" test -s f5/figure5.csv
check "figure5.csv has the header" sh -c "grep -v '^#' f5/figure5.csv | head -n 1 | grep -qx '$header'"
check "figure5.csv has a vanilla row" grep -q '^figure5,cpu:0,.*,fast,dense,forward,1,' f5/figure5.csv
check "figure5.csv has a dilated row" grep -q '^figure5,cpu:0,.*,fast,figure5,forward,1,' f5/figure5.csv
check "B = T/N: N=8192 runs with B=2" grep -q '^figure5,cpu:0,.*,fast,dense,forward,1,interleaved,2,8192,' f5/figure5.csv
check "B = T/N: N=16384 runs with B=1" grep -q '^figure5,cpu:0,.*,fast,dense,forward,1,interleaved,1,16384,' f5/figure5.csv
# One device: the tokens per device are N, so the levels are 2048 and N.
check "the dilated levels are 2048 and N, 2048 rows each" \
    grep -q '^figure5,cpu:0,.*,fast,figure5,.*,16384,1,16,2048/1 16384/8,' f5/figure5.csv
check "the table names T" grep -q 'T = 16384 tokens per batch' "$out"
check "figure5.gp exists" grep -q 'set logscale x 2' f5/figure5.gp
check "figure5.gp says what was held constant" grep -q 'T = 16384 tokens per batch held constant' f5/figure5.gp
if command -v gnuplot >/dev/null 2>&1; then
    check "the output says where the plot went" grep -q 'figure5.png and .*figure5.svg' "$out"
    check "figure5.png is a PNG" sh -c "head -c 4 f5/figure5.png | grep -q PNG"
    check "figure5.svg is an SVG" grep -q '<svg' f5/figure5.svg
else
    echo "gnuplot is not installed: the PNG and SVG are not checked"
fi

# Figure 5 with the backward: a forward+backward row per length and method,
# and its lines in the plot script. The budget is lifted: under a sanitizer
# a backward cell can take longer than the default share, and a cell the
# budget skips has no row to check.
expect_ok "$LONGNET_BENCH" --figure5 --device cpu --tokens-per-batch 16384 --heads 1 \
    --dim 16 --repeat 1 --warmup 0 --check-length 0 --quiet --pass forward,backward \
    --max-seconds 36000 --outdir f5b
for method in dense figure5; do
    for n in 8192 16384; do
        check "figure5.csv has a $method forward+backward row at N=$n" \
            grep -q "^figure5,cpu:0,.*,fast,$method,forward+backward,1,interleaved,[12],$n," \
            f5b/figure5.csv
    done
done
check "figure5.csv keeps the backward rows" grep -q '^figure5,cpu:0,.*,fast,figure5,backward,1,' f5b/figure5.csv
check "figure5.gp draws the forward+backward lines" grep -q 'title "dilated, cpu:0 fast, forward+backward"' f5b/figure5.gp
check "figure5.gp draws vanilla's forward+backward" grep -q 'title "vanilla, cpu:0 fast, forward+backward"' f5b/figure5.gp
check "figure5.gp still draws the forward lines" grep -q 'title "dilated, cpu:0 fast, forward"' f5b/figure5.gp
check "the table names both passes" grep -q 'forward and backward (and forward+backward' "$out"

# A group of two: each member gets N/2 tokens, a third level.
expect_ok "$LONGNET_BENCH" --figure5 --device cpu+cpu --tokens-per-batch 8192 --heads 1 \
    --dim 16 --repeat 1 --warmup 0 --check-length 0 --quiet --outdir f5g
check "a group's dilated levels are 2048, N/2 and N" \
    grep -q '^figure5,cpu+cpu,.*,figure5,.*,8192,1,16,2048/1 4096/2 8192/4,' f5g/figure5.csv

# ------------------------------------------------------------- the peer
# --peer torch with no torch: one clear error saying how to install it.
# The real peer (bench/peers/torch_sdpa.py over torch >= 2) is not needed:
# a fake Python stands in for it, answering the script's protocol, so the
# bench's side (finding it, its columns, its check, its failures) is
# tested on every machine; never a time.
bench_fail "install-peers" 1 "$LONGNET_BENCH" --matrix $tiny --peer torch \
    --peer-python "$tmp/no-such-python"
bench_fail "'tensorflow'" 1 "$LONGNET_BENCH" --peer tensorflow
cat >no-torch <<'EOS'
#!/bin/sh
echo "torch_sdpa.py: cannot import torch (No module named 'torch'): run scripts/install-peers" >&2
exit 3
EOS
chmod +x no-torch
bench_fail "cannot import torch" 1 "$LONGNET_BENCH" --matrix $tiny --peer torch \
    --peer-python "$tmp/no-torch"
# fake-torch MEDIAN: answers --version, time (with MEDIAN; "none": no
# median) and check (after finding the inputs the bench saved).
fake_peer() {
    cat >"fake-$1" <<EOS
#!/bin/sh
shift
case \$1 in
--version) echo "torch=2.99.0 threads=2" ;;
time) test "$1" = none && { echo "torch=2.99.0 threads=2"; exit 0; }
      echo "torch=2.99.0 threads=2 median_ms=$1 min_ms=$1 max_ms=$1" ;;
check) while test \$# -gt 1; do
           case \$1 in --q|--k|--v|--o) test -s "\$2" || { echo "no \$2" >&2; exit 1; } ;; esac
           shift
       done
       echo "torch=2.99.0 max_abs_err=1.5e-07" ;;
*) exit 1 ;;
esac
EOS
    chmod +x "fake-$1"
}
fake_peer 7.25
# shellcheck disable=SC2086
mkdir td
expect_ok env TMPDIR="$tmp/td" "$LONGNET_BENCH" --matrix $tiny --causal no --peer torch \
    --peer-python "$tmp/fake-7.25" --csv p.csv --json p.json
check "the table has the peer's columns" grep -q 'torch ms *torch/longnet$' "$out"
check "the table shows the peer's median" grep -q '^cpu:0 *fast .* 7\.25 *[0-9.]*$' "$out"
check "the table names torch's version" grep -q '^torch: .*torch=2.99.0' "$out"
pfield() {
    grep -v '^#' p.csv | awk -F, -v name="$1" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) col = i; next }
        { print $col; exit }'
}
check "the CSV has the peer's median ($(pfield peer_median_ms))" test "$(pfield peer_median_ms)" = 7.25
check "the peer's ratio is its median over longnet's ($(pfield peer_ratio))" \
    awk -v r="$(pfield peer_ratio)" -v m="$(pfield median_ms)" \
    'BEGIN { exit !(r > 0 && (r * m - 7.25) ^ 2 < 1e-4 * 7.25 ^ 2) }'
check "the CSV has the peer's check ($(pfield peer_max_abs_err))" \
    test "$(pfield peer_max_abs_err)" = 1.5e-07
check "the CSV names torch's version" grep -q '^# peer: torch=2.99.0 threads=2; python ' p.csv
check "the JSON has the peer's fields" \
    sh -c "grep -q '\"peer_ratio\": [0-9]' p.json && grep -q '\"peer\": \"torch=2.99.0' p.json"
check "the error check's inputs for the peer are gone afterwards" \
    sh -c "test -z \"\$(ls -A td)\""
# A peer that answers without a median: the cell says so, nothing invented.
fake_peer none
# shellcheck disable=SC2086
"$LONGNET_BENCH" --matrix $tiny --causal no --peer torch --peer-python "$tmp/fake-none" \
    --csv p.csv >"$out" 2>"$err"
check "a peer without an answer does not fail longnet's cell" grep -q ',ok,' p.csv
check "a peer without an answer leaves its median empty" test -z "$(pfield peer_median_ms)"
check "a peer without an answer is named in the message" grep -q 'peer: ' p.csv
# Installed (a virtualenv of scripts/install-peers at LONGNET_PEERS_VENV)
# and not asked about: the default comparison runs it beside; --peer none
# leaves it out. (The suite's environment points LONGNET_PEERS_VENV
# nowhere, so that the other runs here have no peer.)
mkdir -p venv/bin && cp "fake-7.25" venv/bin/python
# shellcheck disable=SC2086
expect_ok env LONGNET_PEERS_VENV="$tmp/venv" "$LONGNET_BENCH" --matrix $tiny --causal no \
    --csv p.csv
check "an installed peer runs beside without --peer" test "$(pfield peer_median_ms)" = 7.25
check "an installed peer is named in the CSV" grep -q '^# peer: torch=2.99.0 threads=2; python .*/venv/bin/python' p.csv
# shellcheck disable=SC2086
expect_ok env LONGNET_PEERS_VENV="$tmp/venv" "$LONGNET_BENCH" --matrix $tiny --causal no \
    --peer none --csv p.csv
check "--peer none leaves an installed peer out" test -z "$(pfield peer_median_ms)"
# The plots draw the peer beside longnet: one line per method (and per set
# of levels: a group's dilated levels differ from one device's), its
# median once per length however many devices and kernels ran beside it.
# The reference kernel is the second kernel of the plain build only: under
# a sanitizer its dense cell takes minutes. The budget is lifted, as above.
kernels=fast,reference
if test -n "${ASAN_OPTIONS:-}${TSAN_OPTIONS:-}"; then
    kernels=fast
fi
expect_ok env LONGNET_CPU_DEVICES=2 "$LONGNET_BENCH" --figure5 --device cpu:0,cpu:1,cpu:0+cpu:1 \
    --kernel $kernels --tokens-per-batch 8192 --heads 1 --dim 16 --repeat 1 --warmup 0 \
    --check-length 0 --max-seconds 36000 --quiet --outdir f5p --peer torch \
    --peer-python "$tmp/fake-7.25"
check "figure5.gp draws the peer's vanilla line" \
    grep -q 'title "vanilla, torch SDPA (--peer)"' f5p/figure5.gp
check "figure5.gp draws the peer at one device's dilated levels" \
    grep -q "title \"dilated, torch SDPA (--peer) at cpu:0's levels\"" f5p/figure5.gp
check "figure5.gp draws the peer at the group's dilated levels" \
    grep -q "title \"dilated, torch SDPA (--peer) at cpu:0+cpu:1's levels\"" f5p/figure5.gp
# 3 peer lines x 1 length (N = 8192): cpu:1 has cpu:0's levels, and vanilla
# is the same operator on all three devices.
check "the peer's lines hold its median once per length ($(grep -c '^[0-9]* 7.25$' f5p/figure5.gp))" \
    test "$(grep -c '^[0-9]* 7.25$' f5p/figure5.gp)" = 3
expect_ok "$LONGNET_BENCH" --scaling --device cpu --scaling-max-length 16384 --heads 1 \
    --dim 16 --repeat 1 --warmup 0 --check-length 0 --quiet --outdir scp --peer torch \
    --peer-python "$tmp/fake-7.25"
check "scaling.gp draws the peer's dense and dilated lines" \
    sh -c "grep -q 'title \"dense, torch SDPA (--peer)\"' scp/scaling.gp && grep -q 'title \"dilated, torch SDPA (--peer)\"' scp/scaling.gp"

# ------------------------------------------------------ the scaling plot
expect_ok "$LONGNET_BENCH" --scaling --device cpu --scaling-max-length 8192 --heads 1 \
    --dim 16 --repeat 1 --warmup 0 --check-length 128 --quiet --outdir sc
check "scaling.csv has a dense row with B=1" \
    grep -q '^scaling,cpu:0,.*,fast,dense,forward,1,interleaved,1,8192,' sc/scaling.csv
check "scaling.csv has a dilated row" grep -q '^scaling,cpu:0,.*,fast,scaling,' sc/scaling.csv
check "scaling.gp is log-log" grep -q 'set logscale xy 2' sc/scaling.gp

finish
