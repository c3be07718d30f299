# figure5.gp — written by longnet-bench (longnet 0.1.0, 2026-12-03T14:03:21Z); the data is inline.
# Redraw: gnuplot figure5.gp (writes figure5.png and figure5.svg here), or
#   gnuplot -e "png_out='a.png'; svg_out='a.svg'" figure5.gp
# machine: AMD EPYC, 2 cores; OpenBLAS SGEMM 413.8 GFLOP/s
if (!exists("png_out")) png_out = "figure5.png"
if (!exists("svg_out")) svg_out = "figure5.svg"

$line0 << EOD
# length median_ms
8192 64.7612
16384 54.5845
32768 54.5123
65536 50.2573
EOD
$line1 << EOD
# length median_ms
8192 222.244
16384 156.236
32768 177.286
65536 141.847
EOD
$line2 << EOD
# length median_ms
8192 174.252
16384 334.938
32768 749.85
65536 1826.3
EOD
$line3 << EOD
# length median_ms
8192 477.776
16384 868.473
32768 1763.69
65536 5137.45
EOD
$line4 << EOD
# length median_ms
8192 122.526
16384 104.675
32768 107.862
65536 99.0165
EOD
$line5 << EOD
# length median_ms
8192 292.573
16384 562.998
32768 1147.72
65536 3281.37
EOD

set title "Figure 5 (LongNet, §3.2): forward latency at T = 65536 tokens per batch held constant (B = T/N)\ndilated: segments 2048, tokens per device, N; dilation w/2048, so every segment selects 2048 rows; vanilla: w = N, r = 1\ncausal, H=1, D=64, median of 3 runs; AMD EPYC, 2 cores" font ",10"
set xlabel "sequence length (tokens)"
set ylabel "latency (ms), median of 3 runs"
set logscale x 2
set yrange [0:*]
set grid xtics ytics
set key top left box
set pointsize 1.2
set xtics ("8K" 8192, "16K" 16384, "32K" 32768, "64K" 65536)
set xrange [6301.54:85196.8]

set terminal pngcairo size 960,720 font ",11"
set output png_out
plot $line0 using 1:2 with linespoints lc 1 dt 1 pt 7 lw 2 title "dilated, cpu:0 fast", \
     $line1 using 1:2 with linespoints lc 2 dt 1 pt 7 lw 2 title "dilated, torch SDPA (--peer)", \
     $line2 using 1:2 with linespoints lc 1 dt 2 pt 6 lw 2 title "vanilla, cpu:0 fast", \
     $line3 using 1:2 with linespoints lc 2 dt 2 pt 6 lw 2 title "vanilla, torch SDPA (--peer)", \
     $line4 using 1:2 with linespoints lc 3 dt 1 pt 7 lw 2 title "dilated, opencl:0 fused", \
     $line5 using 1:2 with linespoints lc 3 dt 2 pt 6 lw 2 title "vanilla, opencl:0 fused"
unset output

set terminal svg size 960,720 dynamic font ",11"
set output svg_out
plot $line0 using 1:2 with linespoints lc 1 dt 1 pt 7 lw 2 title "dilated, cpu:0 fast", \
     $line1 using 1:2 with linespoints lc 2 dt 1 pt 7 lw 2 title "dilated, torch SDPA (--peer)", \
     $line2 using 1:2 with linespoints lc 1 dt 2 pt 6 lw 2 title "vanilla, cpu:0 fast", \
     $line3 using 1:2 with linespoints lc 2 dt 2 pt 6 lw 2 title "vanilla, torch SDPA (--peer)", \
     $line4 using 1:2 with linespoints lc 3 dt 1 pt 7 lw 2 title "dilated, opencl:0 fused", \
     $line5 using 1:2 with linespoints lc 3 dt 2 pt 6 lw 2 title "vanilla, opencl:0 fused"
unset output
