#include "tools/benchmark/bench_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sluice::bench {

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the ceil(q * n)-th smallest, counting from 1.
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
  rank = std::clamp<size_t>(rank, 1, values.size());
  return values[rank - 1];
}

Summary Summarize(const std::vector<double>& values) {
  Summary s;
  s.n = values.size();
  if (values.empty()) return s;
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  s.min = sorted.front();
  s.max = sorted.back();
  s.p50 = Percentile(sorted, 0.5);
  s.p99 = Percentile(sorted, 0.99);
  s.mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / static_cast<double>(sorted.size());
  return s;
}

std::vector<double> Milliseconds(const std::vector<absl::Duration>& durations) {
  std::vector<double> out;
  out.reserve(durations.size());
  for (absl::Duration d : durations) out.push_back(absl::ToDoubleMilliseconds(d));
  return out;
}

std::vector<double> Microseconds(const std::vector<absl::Duration>& durations) {
  std::vector<double> out;
  out.reserve(durations.size());
  for (absl::Duration d : durations) out.push_back(absl::ToDoubleMicroseconds(d));
  return out;
}

std::vector<double> Ratios(const std::vector<double>& numerator,
                           const std::vector<double>& denominator) {
  std::vector<double> out;
  const size_t n = std::min(numerator.size(), denominator.size());
  for (size_t i = 0; i < n; ++i) {
    if (denominator[i] != 0) out.push_back(numerator[i] / denominator[i]);
  }
  return out;
}

std::string FormatNumber(double value, int digits) {
  if (value == 0) return "0";
  if (!std::isfinite(value)) return value > 0 ? "inf" : (value < 0 ? "-inf" : "nan");
  const double magnitude = std::fabs(value);
  // Decimals so that `digits` significant digits show, never fewer than none.
  const int integer_digits = static_cast<int>(std::floor(std::log10(magnitude))) + 1;
  const int decimals = std::max(0, digits - integer_digits);
  std::string text = absl::StrFormat("%.*f", decimals, value);
  if (text.find('.') != std::string::npos) {
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
  }
  return text;
}

std::string FormatSpread(const std::vector<double>& values, const std::string& unit) {
  if (values.empty()) return "n/a";
  const Summary s = Summarize(values);
  if (values.size() == 1) return FormatNumber(s.p50) + unit;
  return absl::StrCat(FormatNumber(s.p50), unit, " (", FormatNumber(s.min), unit, "..",
                      FormatNumber(s.max), unit, ")");
}

std::string P50P99(const std::vector<double>& values, const std::string& unit) {
  const Summary s = Summarize(values);
  return absl::StrCat(FormatNumber(s.p50), " / ", FormatNumber(s.p99), unit);
}

}  // namespace sluice::bench
