# scaling.gp — written by longnet-bench (longnet 0.1.0, 2026-12-03T14:05:05Z); the data is inline.
# Redraw: gnuplot scaling.gp (writes scaling.png and scaling.svg here), or
#   gnuplot -e "png_out='a.png'; svg_out='a.svg'" scaling.gp
# machine: AMD EPYC, 2 cores; OpenBLAS SGEMM 417.1 GFLOP/s
if (!exists("png_out")) png_out = "scaling.png"
if (!exists("svg_out")) svg_out = "scaling.svg"

$line0 << EOD
# length median_ms
8192 8.75957
16384 16.6645
32768 35.2922
65536 69.3869
131072 138.629
262144 269.277
524288 532.798
1048576 1066.43
EOD
$line1 << EOD
# length median_ms
8192 28.7975
16384 49.7343
32768 122.307
65536 250.92
131072 549.714
262144 906.98
524288 2143.53
1048576 3811.44
EOD
$line2 << EOD
# length median_ms
8192 23.311
16384 88.4333
32768 387.507
65536 1986.8
EOD
$line3 << EOD
# length median_ms
8192 86.667
16384 344.672
32768 1359.55
65536 5446.4
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
     $line1 using 1:2 with linespoints lc 2 dt 1 pt 7 lw 2 title "dilated, torch SDPA (--peer)", \
     $line2 using 1:2 with linespoints lc 1 dt 2 pt 6 lw 2 title "dense, cpu:0 fast", \
     $line3 using 1:2 with linespoints lc 2 dt 2 pt 6 lw 2 title "dense, torch SDPA (--peer)"
unset output

set terminal svg size 960,720 dynamic font ",11"
set output svg_out
plot $line0 using 1:2 with linespoints lc 1 dt 1 pt 7 lw 2 title "dilated, cpu:0 fast", \
     $line1 using 1:2 with linespoints lc 2 dt 1 pt 7 lw 2 title "dilated, torch SDPA (--peer)", \
     $line2 using 1:2 with linespoints lc 1 dt 2 pt 6 lw 2 title "dense, cpu:0 fast", \
     $line3 using 1:2 with linespoints lc 2 dt 2 pt 6 lw 2 title "dense, torch SDPA (--peer)"
unset output
