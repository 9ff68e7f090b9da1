#ifndef SLUICE_SERVICE_EXPOSITION_H_
#define SLUICE_SERVICE_EXPOSITION_H_

// ExpositionWriter: one page in the Prometheus text exposition format,
// version 0.0.4 (what a Prometheus server scrapes from /metrics).
//
//   ExpositionWriter page;
//   page.Declare("sluice_requests_total", MetricType::kCounter, "Requests by final code.");
//   page.Add("sluice_requests_total", {{"model", "echo"}, {"code", "OK"}}, 3);
//   absl::StatusOr<std::string> text = std::move(page).Finish();

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sluice {

enum class MetricType { kCounter, kGauge, kHistogram };

// Labels: name/value pairs, written in the order given.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// HistogramValue: one histogram's state. cumulative[i] counts observations
// <= bounds[i]; the writer adds the le="+Inf" bucket itself, equal to count.
struct HistogramValue {
  std::vector<double> bounds;  // finite, strictly increasing
  std::vector<uint64_t> cumulative;
  uint64_t count = 0;
  double sum = 0;
};

// ExpositionWriter collects families and samples, then writes them out.
//
// Families come out in the order they were declared, each with its HELP and
// TYPE lines once and then its samples in the order they were added, so the
// samples of several families may be added interleaved. Everything is
// checked against the format's rules (metric and label names, reserved
// labels, duplicate series, counters that go below zero, histogram buckets
// that are not cumulative); the first mistake is what Finish returns, since
// a page with a broken line is rejected whole by the scraper.
//
// Not thread-safe: build one page on one thread.
class ExpositionWriter {
 public:
  // Declare: a family `name` of `type`, described by `help` (one line of
  // text; backslashes and newlines are escaped).
  void Declare(absl::string_view name, MetricType type, absl::string_view help);

  // Add: one counter or gauge sample of family `name`, written as
  // FormatValue does.
  void Add(absl::string_view name, const MetricLabels& labels, double value);

  // AddHistogram: one histogram series of family `name`: its _bucket lines
  // (ending with le="+Inf"), _sum and _count.
  void AddHistogram(absl::string_view name, const MetricLabels& labels,
                    const HistogramValue& value);

  // Finish: the page, or the first mistake made while building it.
  absl::StatusOr<std::string> Finish() &&;

  // FormatValue: a sample value as the format writes it ("3", "0.25",
  // "0.0001", "1e-07", "+Inf", "-Inf", "NaN").
  static std::string FormatValue(double value);
  // EscapeLabelValue: backslash, double quote and newline escaped.
  static std::string EscapeLabelValue(absl::string_view value);
  // IsValidMetricName / IsValidLabelName: the format's name rules.
  static bool IsValidMetricName(absl::string_view name);
  static bool IsValidLabelName(absl::string_view name);

 private:
  struct Family {
    std::string name;
    MetricType type;
    std::string help;
    std::string samples;         // the sample lines written so far
    std::set<std::string> seen;  // label sets already written, to refuse duplicates
  };

  // Sample: the family to add a sample to, after checking that it exists,
  // is a histogram exactly when `histogram`, and that `labels` are valid and
  // new to it; nullptr on a mistake.
  Family* Sample(absl::string_view name, bool histogram, const MetricLabels& labels);
  void Fail(std::string message);

  std::vector<Family> families_;
  std::map<std::string, size_t, std::less<>> index_;  // family name -> families_ index
  absl::Status status_;
};

}  // namespace sluice

#endif  // SLUICE_SERVICE_EXPOSITION_H_
