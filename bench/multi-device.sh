#!/bin/sh
# multi-device.sh — the scheduler's scaling: each device of a list alone,
# then all of them splitting one sequence, on the `scaling` configuration
# (segments 2048·4^k up to N, dilation w/2048). Prints tokens/s of each and
# the ratio of the together throughput to the sum of the single ones, and
# the bytes each device exchanges (from --explain) at each length.
#
# Usage: bench/multi-device.sh [--longnet PATH] [--devices LIST] [--lengths LIST]
#                              [--repeat R] [--causal]
# Defaults: the built tools/longnet, LONGNET_CPU_DEVICES=2 and the devices
# cpu:0,cpu:1 (the two halves of this machine's cores), N = 1048576, R = 3.
set -eu

longnet=${LONGNET:-$(dirname "$0")/../tools/longnet}
devices="cpu:0,cpu:1"
lengths=1048576
repeat=3
causal=
while [ $# -gt 0 ]; do
    case $1 in
    --longnet) longnet=$2; shift 2 ;;
    --devices) devices=$2; shift 2 ;;
    --lengths) lengths=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --causal) causal=--causal; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "multi-device.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
: "${LONGNET_CPU_DEVICES:=2}"
export LONGNET_CPU_DEVICES

work=$(mktemp -d "${TMPDIR:-/tmp}/longnet-multi.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# levels N: the scaling configuration's --segments and --dilations.
levels() {
    w=2048; segs=; dils=
    while :; do
        segs="$segs${segs:+,}$w"; dils="$dils${dils:+,}$((w / 2048))"
        [ "$w" -gt $(($1 / 4)) ] && break
        w=$((w * 4))
    done
    echo "--segments $segs --dilations $dils"
}

# median_ms ARGS... — the median over $repeat runs of `longnet run` (ms).
median_ms() {
    i=0
    : >"$work/times"
    while [ "$i" -lt "$repeat" ]; do
        "$longnet" run --q "$work/q.npy" --k "$work/k.npy" --v "$work/v.npy" $causal \
            --out "$work/o.npy" "$@" | sed -n 's/^time *\([0-9.]*\) ms$/\1/p' >>"$work/times"
        i=$((i + 1))
    done
    sort -n "$work/times" | awk '{ t[NR] = $1 } END { print t[int((NR + 1) / 2)] }'
}

echo "longnet multi-device scaling: devices $devices, scaling configuration (2048*4^k), H=1, D=64${causal:+, causal}"
echo "LONGNET_CPU_DEVICES=$LONGNET_CPU_DEVICES; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for n in $(echo "$lengths" | tr ',' ' '); do
    for t in q k v; do
        "$longnet" gen --shape "1,$n,1,64" --seed "$(printf %d "'$t")" --out "$work/$t.npy"
    done
    lv=$(levels "$n")
    echo
    echo "N = $n ($lv)"
    sum=0
    weights=
    for d in $(echo "$devices" | tr ',' ' '); do
        ms=$(median_ms $lv --device "$d")
        tps=$(awk -v n="$n" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
        printf '  %-12s alone:    %10.1f ms  %12s tokens/s\n' "$d" "$ms" "$tps"
        sum=$((sum + tps))
        weights="$weights${weights:+,}$d=$tps"
    done
    ms=$(median_ms $lv --device "$weights")
    tps=$(awk -v n="$n" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
    printf '  %-12s together: %10.1f ms  %12s tokens/s = %.1f%% of the sum (%s)\n' "all" "$ms" \
        "$tps" "$(awk -v a="$tps" -v b="$sum" 'BEGIN { print 100 * a / b }')" "$weights"
    "$longnet" run --q "$work/q.npy" --k "$work/k.npy" --v "$work/v.npy" $causal $lv \
        --device "$weights" --explain --out "$work/o.npy" |
        sed -n '/^bytes per device/,/^input/p' | grep -v '^input' | sed 's/^/  /'
done
