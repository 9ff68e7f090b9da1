#ifndef SLUICE_TESTS_METRICS_TEXT_H_
#define SLUICE_TESTS_METRICS_TEXT_H_

// Reading the text of a server's /metrics page (tests and the benchmark).

#include <map>
#include <string>

namespace sluice::testing {

// MetricsPage: one scrape, as series text (e.g.
// `sluice_workers{model="echo"}`) -> value. A series the server left out (a
// combination that never happened) reads as 0.
class MetricsPage {
 public:
  explicit MetricsPage(std::string text);
  double operator[](const std::string& series) const;
  bool Has(const std::string& series) const { return values_.count(series) > 0; }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::map<std::string, double> values_;
};

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_METRICS_TEXT_H_
