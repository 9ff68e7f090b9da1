#ifndef SLUICE_TOOLS_BENCHMARK_BENCH_STATS_H_
#define SLUICE_TOOLS_BENCHMARK_BENCH_STATS_H_

// The small amount of statistics the benchmark reports: order statistics of a
// sample, and the spread of repeated ratios. Pure functions, unit-tested.

#include <cstddef>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace sluice::bench {

// Percentile: the nearest-rank `q`-quantile of `values` (q in [0, 1]): the
// smallest value such that at least q of the sample is at or below it.
// Percentile(v, 0) is the minimum, Percentile(v, 1) the maximum. Returns 0
// for an empty sample.
double Percentile(std::vector<double> values, double q);

// Summary: the order statistics the tables show.
struct Summary {
  size_t n = 0;
  double min = 0;
  double p50 = 0;
  double p99 = 0;
  double max = 0;
  double mean = 0;
};
Summary Summarize(const std::vector<double>& values);

// Milliseconds / Microseconds: durations as doubles, for Summarize.
std::vector<double> Milliseconds(const std::vector<absl::Duration>& durations);
std::vector<double> Microseconds(const std::vector<absl::Duration>& durations);

// Ratios: element-wise numerator[i] / denominator[i] over the common length,
// skipping pairs whose denominator is zero. Pairs measured back to back on a
// noisy machine are compared this way, not as ratios of averages.
std::vector<double> Ratios(const std::vector<double>& numerator,
                           const std::vector<double>& denominator);

// FormatNumber: `value` with `digits` significant digits at most and no
// exponent for ordinary magnitudes ("1234", "12.3", "0.0123").
std::string FormatNumber(double value, int digits = 3);

// FormatSpread: "median (min..max)" of a sample, each via FormatNumber, with
// `unit` appended to each number ("0.95x (0.91x..0.99x)").
std::string FormatSpread(const std::vector<double>& values, const std::string& unit = "");

// P50P99: "p50 / p99" of a sample, each via FormatNumber, then `unit`.
std::string P50P99(const std::vector<double>& values, const std::string& unit);

}  // namespace sluice::bench

#endif  // SLUICE_TOOLS_BENCHMARK_BENCH_STATS_H_
