#!/bin/sh
# mpi_bench.sh — `longnet-bench --figure5 --mpi` under mpirun (issue 14):
# on 2 ranks at T = 16384, every cell runs across the ranks with Figure 5's
# levels 2048 / tokens per rank (N/2) / N, forward and backward; only rank
# 0 prints and writes figure5.csv (its rows, the rank count) and the JSON;
# rank 1 writes nothing. --mpi without --figure5 is refused by name. Each
# rank runs in its own directory, so that what rank 1 wrote can be seen.
# No timings are asserted. Skips (77) as mpi_ranks.sh does.
. "${TESTS_SRCDIR:-$(dirname "$0")}/cli_lib.sh"

# Refused before MPI starts: no mpirun needed.
"$LONGNET_BENCH" --mpi --matrix --device cpu >"$out" 2>"$err"
rc=$?
check "--mpi --matrix exits 2 (rc $rc)" test "$rc" -eq 2
check "--mpi --matrix says why" grep -q '^longnet-bench: --mpi runs only --figure5 (not the matrix)$' "$err"

# Built without MPI (configure found none, so no mpirun either): --mpi
# says so, before the skip.
if test -z "$LONGNET_MPIRUN"; then
    "$LONGNET_BENCH" --figure5 --mpi --device cpu >"$out" 2>"$err"
    rc=$?
    check "--mpi without MPI exits 1 (rc $rc)" test "$rc" -eq 1
    check "--mpi without MPI says so" grep -q '^longnet-bench: --mpi: this longnet-bench was built without MPI' "$err"
    test "$failed" -eq 0 || finish
fi
. "${TESTS_SRCDIR:-$(dirname "$0")}/mpi_lib.sh"

cd "$tmp" || exit 99
mkdir r0 r1 || exit 99
# One thread per rank: two ranks on the 2 cores (the bench's --device
# takes no device options: the CPU backend's variable sets the threads).
# The budget is lifted: under a sanitizer a cell outruns its share and is
# skipped, leaving no row to check (as in bench_smoke.sh).
LONGNET_CPU_THREADS=1 mpirun -np 2 sh -c 'cd r$OMPI_COMM_WORLD_RANK && exec "$0" "$@"' \
    "$LONGNET_BENCH" --figure5 --mpi --device cpu --tokens-per-batch 16384 --heads 1 \
    --repeat 1 --warmup 0 --pass forward,backward --max-seconds 36000 --quiet --outdir f5 --json b.json \
    >"$out" 2>"$err"
rc=$?
check "mpirun -np 2 longnet-bench --figure5 --mpi exits 0 (rc $rc)" test "$rc" -eq 0

# rows_ok CSV — Figure 5's rows across 2 ranks: B = T/N, the dilated
# levels 2048, N/2 (the tokens per rank) and N, vanilla w = N, each pass.
rows_ok() {
    for pass in forward backward forward+backward; do
        grep -q "^figure5,cpu:0,.*,fast,figure5,$pass,1,interleaved,2,8192,1,64,2048/1 4096/2 8192/4," "$1" &&
        grep -q "^figure5,cpu:0,.*,fast,figure5,$pass,1,interleaved,1,16384,1,64,2048/1 8192/4 16384/8," "$1" &&
        grep -q "^figure5,cpu:0,.*,fast,dense,$pass,1,interleaved,2,8192,1,64,8192/1," "$1" &&
        grep -q "^figure5,cpu:0,.*,fast,dense,$pass,1,interleaved,1,16384,1,64,16384/1," "$1" ||
        return 1
    done
    test "$(grep -c '^figure5,.*,ok,' "$1")" -eq 12
}
check "rank 0 wrote figure5.csv with the 12 rows across 2 ranks" rows_ok r0/f5/figure5.csv
# A wrong fixture is caught: one process's levels (tokens per device = N).
sed 's|2048/1 4096/2 8192/4|2048/1 8192/4|' r0/f5/figure5.csv >one.csv
check "a CSV with one process's levels is caught" eval '! rows_ok one.csv'
check "figure5.csv records the ranks" grep -q '^# ranks: 2 ' r0/f5/figure5.csv
check "the JSON records the ranks" grep -q '"ranks": 2' r0/b.json
check "rank 0 drew figure5.gp, across the ranks" grep -q 'tokens per rank.*across 2 MPI ranks' r0/f5/figure5.gp
check "rank 1 wrote nothing" test -z "$(ls -A r1)"
check "only rank 0 printed the table" test "$(grep -c '^figure 5: ' "$out")" -eq 1
check "the table says the ranks" grep -q '^ranks    2 ' "$out"
finish
