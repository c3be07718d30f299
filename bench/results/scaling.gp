# scaling.gp — written by longnet-bench (longnet 0.1.0, 2026-12-01T22:07:02Z); the data is inline.
# Redraw: gnuplot scaling.gp (writes scaling.png and scaling.svg here), or
#   gnuplot -e "png_out='a.png'; svg_out='a.svg'" scaling.gp
# machine: AMD EPYC, 2 cores; OpenBLAS SGEMM 163.9 GFLOP/s
if (!exists("png_out")) png_out = "scaling.png"
if (!exists("svg_out")) svg_out = "scaling.svg"

$line0 << EOD
# length median_ms
8192 21.6688
16384 47.2709
32768 95.2652
65536 220.586
131072 392.104
262144 831.651
524288 1568.81
1048576 3264.12
EOD
$line1 << EOD
# length median_ms
8192 70.5775
16384 280.834
32768 2097.55
EOD

set title "Scaling: forward latency as N grows (causal, B=1, H=1, D=64)\ndilated: segments 2048*4^k <= N, dilation w/2048; dense: w = N, r = 1\nAMD EPYC, 2 cores" font ",10"
set xlabel "sequence length (tokens)"
set ylabel "latency (ms), median"
set logscale xy 2
set format y "10^{%L}"
set logscale y 10
set grid xtics ytics mytics
set key below box
set pointsize 1.2
set xtics ("8K" 8192, "16K" 16384, "32K" 32768, "64K" 65536, "128K" 131072, "256K" 262144, "512K" 524288, "1M" 1048576)
set xrange [6301.54:1.36315e+06]

set terminal pngcairo size 960,720 font ",11"
set output png_out
plot $line0 using 1:2 with linespoints lc 1 dt 1 pt 7 lw 2 title "dilated, cpu:0 fast", \
     $line1 using 1:2 with linespoints lc 1 dt 2 pt 6 lw 2 title "dense, cpu:0 fast"
unset output

set terminal svg size 960,720 dynamic font ",11"
set output svg_out
plot $line0 using 1:2 with linespoints lc 1 dt 1 pt 7 lw 2 title "dilated, cpu:0 fast", \
     $line1 using 1:2 with linespoints lc 1 dt 2 pt 6 lw 2 title "dense, cpu:0 fast"
unset output
