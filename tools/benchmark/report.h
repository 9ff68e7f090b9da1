#ifndef SLUICE_TOOLS_BENCHMARK_REPORT_H_
#define SLUICE_TOOLS_BENCHMARK_REPORT_H_

// Report: the benchmark's results table. Each row is one figure with, where
// there is one, its target and whether it was met; notes explain a section.
// Printed as aligned text and written as Markdown (for BENCHMARKS.md) and as
// tab-separated values (for scripts).

#include <cstdio>
#include <string>
#include <vector>

namespace sluice::bench {

enum class Verdict { kNone, kMet, kNotMet };

class Report {
 public:
  // Add: one figure. `target` empty for figures without one.
  void Add(std::string section, std::string metric, std::string value, std::string target = "",
           Verdict verdict = Verdict::kNone);
  // Note: a line of explanation printed after the table.
  void Note(std::string text);

  void Print(std::FILE* out) const;
  bool WriteMarkdown(const std::string& path, const std::string& heading) const;
  bool WriteTsv(const std::string& path) const;

  // targets_missed: rows with Verdict::kNotMet.
  int targets_missed() const;

 private:
  struct Row {
    std::string section, metric, value, target;
    Verdict verdict;
  };
  std::vector<Row> rows_;
  std::vector<std::string> notes_;
};

// VerdictName: "met", "NOT met" or "".
const char* VerdictName(Verdict verdict);
// Check: kMet if `ok`, else kNotMet.
inline Verdict Check(bool ok) { return ok ? Verdict::kMet : Verdict::kNotMet; }

}  // namespace sluice::bench

#endif  // SLUICE_TOOLS_BENCHMARK_REPORT_H_
