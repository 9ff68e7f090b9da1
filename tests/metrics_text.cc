#include "tests/metrics_text.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace sluice::testing {

MetricsPage::MetricsPage(std::string text) : text_(std::move(text)) {
  for (absl::string_view line : absl::StrSplit(text_, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    values_[std::string(line.substr(0, space))] =
        std::strtod(std::string(line.substr(space + 1)).c_str(), nullptr);
  }
}

double MetricsPage::operator[](const std::string& series) const {
  auto it = values_.find(series);
  return it == values_.end() ? 0 : it->second;
}

}  // namespace sluice::testing
