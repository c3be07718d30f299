# figure5.gp — written by longnet-bench (longnet 0.1.0, 2026-11-23T17:43:15Z); the data is inline.
# Redraw: gnuplot figure5.gp (writes figure5.png and figure5.svg here), or
#   gnuplot -e "png_out='a.png'; svg_out='a.svg'" figure5.gp
# machine: AMD EPYC, 2 cores; OpenBLAS SGEMM 165.6 GFLOP/s
if (!exists("png_out")) png_out = "figure5.png"
if (!exists("svg_out")) svg_out = "figure5.svg"

$line0 << EOD
# length median_ms
8192 17.2447
16384 31.2631
32768 77.9396
65536 159.618
131072 299.704
262144 614.225
524288 1204.61
EOD
$line1 << EOD
# length median_ms
8192 52.2495
16384 193.232
32768 1625.66
EOD
$line2 << EOD
# length median_ms
8192 39.4594
16384 48.9027
32768 112.601
65536 248.61
131072 505.663
262144 897.448
EOD
$line3 << EOD
# length median_ms
8192 63.8867
16384 253.038
32768 2009.2
EOD
$line4 << EOD
# length median_ms
8192 543.663
16384 1112.23
EOD
$line5 << EOD
# length median_ms
8192 1649
EOD

set title "Dense vs dilated attention: forward latency (causal, H=1, D=64, B=1)\nAMD EPYC, 2 cores"
set xlabel "sequence length (tokens)"
set ylabel "latency (ms), median"
set logscale xy 2
set format y "10^{%L}"
set logscale y 10
set grid xtics ytics mytics
set key below box
set pointsize 1.2
set xtics ("8K" 8192, "16K" 16384, "32K" 32768, "64K" 65536, "128K" 131072, "256K" 262144, "512K" 524288)
set xrange [6301.54:681574]

set terminal pngcairo size 960,720 font ",11"
set output png_out
plot $line0 using 1:2 with linespoints lc 1 dt 1 pt 7 lw 2 title "dilated, cpu:0 fast", \
     $line1 using 1:2 with linespoints lc 1 dt 2 pt 6 lw 2 title "dense, cpu:0 fast", \
     $line2 using 1:2 with linespoints lc 2 dt 1 pt 7 lw 2 title "dilated, opencl:0 fused", \
     $line3 using 1:2 with linespoints lc 2 dt 2 pt 6 lw 2 title "dense, opencl:0 fused", \
     $line4 using 1:2 with linespoints lc 3 dt 1 pt 7 lw 2 title "dilated, opencl:0 gemm", \
     $line5 using 1:2 with linespoints lc 3 dt 2 pt 6 lw 2 title "dense, opencl:0 gemm"
unset output

set terminal svg size 960,720 dynamic font ",11"
set output svg_out
plot $line0 using 1:2 with linespoints lc 1 dt 1 pt 7 lw 2 title "dilated, cpu:0 fast", \
     $line1 using 1:2 with linespoints lc 1 dt 2 pt 6 lw 2 title "dense, cpu:0 fast", \
     $line2 using 1:2 with linespoints lc 2 dt 1 pt 7 lw 2 title "dilated, opencl:0 fused", \
     $line3 using 1:2 with linespoints lc 2 dt 2 pt 6 lw 2 title "dense, opencl:0 fused", \
     $line4 using 1:2 with linespoints lc 3 dt 1 pt 7 lw 2 title "dilated, opencl:0 gemm", \
     $line5 using 1:2 with linespoints lc 3 dt 2 pt 6 lw 2 title "dense, opencl:0 gemm"
unset output
