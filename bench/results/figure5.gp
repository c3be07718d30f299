# figure5.gp — written by longnet-bench (longnet 0.1.0, 2026-11-23T16:47:58Z); the data is inline.
# Redraw: gnuplot figure5.gp (writes figure5.png and figure5.svg here), or
#   gnuplot -e "png_out='a.png'; svg_out='a.svg'" figure5.gp
# machine: AMD EPYC, 2 cores; OpenBLAS SGEMM 200.0 GFLOP/s
if (!exists("png_out")) png_out = "figure5.png"
if (!exists("svg_out")) svg_out = "figure5.svg"

$line0 << EOD
# length median_ms
8192 45.7924
16384 75.8692
32768 202.735
65536 307.661
131072 798.561
262144 1551.97
EOD
$line1 << EOD
# length median_ms
8192 186.28
16384 428.089
32768 2105.24
EOD
$line2 << EOD
# length median_ms
8192 425.217
16384 458.394
32768 1093.52
EOD
$line3 << EOD
# length median_ms
8192 975.826
16384 3572.82
EOD
$line4 << EOD
# length median_ms
8192 1287.53
EOD
$line5 << EOD
# length median_ms
8192 4814.3
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
set xtics ("8K" 8192, "16K" 16384, "32K" 32768, "64K" 65536, "128K" 131072, "256K" 262144)
set xrange [6301.54:340787]

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
