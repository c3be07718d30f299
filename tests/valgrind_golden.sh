#!/bin/sh
# valgrind_golden.sh — every golden case through `longnet run` on the CPU
# device under valgrind memcheck: no invalid access, no use of uninitialised
# memory, no definite or indirect leak (CI, .ci/run; too slow for `make
# check`: the OpenCL plugin, which the command loads too, takes seconds to
# start under valgrind). Each case runs with --lse on the CPU device; the
# grouped and paper_ratios cases also on the list "cpu=1,cpu=1" (chunks,
# gathered segments, ring steps). Suppressions (third-party frames only):
# tests/sanitizers/valgrind.supp.
#
#   tests/valgrind_golden.sh BUILD_DIR [GOLDEN_DIR]
#
# GOLDEN_DIR defaults to tests/golden in the source tree.
set -u
if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR [GOLDEN_DIR]" >&2
    exit 2
fi
build=$(cd "$1" && pwd) || exit 2
src=$(cd "$(dirname "$0")/.." && pwd)
golden=${2:-$src/tests/golden}
if [ ! -f "$golden/cases.tsv" ]; then
    echo "valgrind_golden: no golden cases in $golden" >&2
    exit 1
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind_golden: valgrind is not installed (scripts/install-deps)" >&2
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/longnet-vg.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
export LONGNET_PLUGIN_PATH=

pass=0 fail=0
tab=$(printf '\t')
while IFS="$tab" read -r name B N H D segs dils causal offsets scale; do
    [ "$name" = name ] && continue
    lists=cpu
    case $name in grouped_causal | paper_ratios) lists="cpu cpu=1,cpu=1" ;; esac
    for devices in $lists; do
        set -- run --q "$golden/$name/q.npy" --k "$golden/$name/k.npy" --v "$golden/$name/v.npy" \
            --segments "$segs" --dilations "$dils" --offsets "$offsets" --scale "$scale" \
            --device "$devices" --out "$tmp/out.npy" --lse "$tmp/lse.npy" --quiet
        [ "$causal" = 1 ] && set -- "$@" --causal
        # libtool --mode=execute: valgrind the program, not its wrapper script.
        "$build/libtool" --mode=execute valgrind -q --error-exitcode=99 \
            --suppressions="$src/tests/sanitizers/valgrind.supp" --leak-check=full \
            --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
            --track-origins=yes "$build/tools/longnet" "$@" >"$tmp/log" 2>&1
        rc=$?
        if [ "$rc" -eq 0 ]; then
            pass=$((pass + 1))
            echo "PASS: $name on $devices"
        else
            fail=$((fail + 1))
            echo "FAIL: $name on $devices (exit status $rc)"
            sed 's/^/    /' "$tmp/log" | head -n 60
        fi
    done
done <"$golden/cases.tsv"
echo "valgrind_golden: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
