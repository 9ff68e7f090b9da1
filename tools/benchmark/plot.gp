# Draws the benchmark's plot from the data sluice_bench writes.
#   gnuplot -e "dir='benchmarks'" tools/benchmark/plot.gp   -> benchmarks/bench.png
if (!exists("dir")) dir = "benchmarks"
concurrent_title = "concurrent"
stop_target_ms = 2
load dir."/plot_labels.gp"
set terminal pngcairo size 960,400 font "sans,9"
set output dir."/bench.png"
set multiplot layout 1,2

set title "Stop latency: client cancel -> generator released"
set xlabel "ms (log scale)"
set ylabel "fraction of cancels"
set logscale x
set yrange [0:1.02]
set grid
set key bottom right
set arrow 1 from stop_target_ms, graph 0 to stop_target_ms, graph 1 nohead dashtype 2 lc rgb "#aa0000"
set label 1 sprintf("target p99 < %g ms", stop_target_ms) at stop_target_ms, graph 0.5 offset 0.5,0 tc rgb "#aa0000"
plot dir."/stop_latency.dat" index 0 using 1:2 with steps lw 2 title "one at a time", \
     dir."/stop_latency.dat" index 1 using 1:2 with steps lw 2 title concurrent_title

unset logscale x
unset arrow 1
unset label 1
set title "sluice / raw gRPC, zero-cost chunks (median, min..max)"
set xlabel "model x concurrent streams"
set ylabel "ratio (1 = as good as raw gRPC)"
set yrange [0:*]
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.6 border -1
set boxwidth 0.9
set key top left
set arrow 2 from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lc rgb "#aa0000"
set label 2 "target 1x" at graph 0.02, first 1 offset 0,0.6 tc rgb "#aa0000"
plot dir."/throughput.dat" using 2:3:4:xtic(1) title "messages/s", \
     "" using 5:6:7 title "server CPU per message (raw / sluice)"
unset multiplot
