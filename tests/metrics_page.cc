#include "tests/metrics_page.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/http_client.h"

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

MetricsPage Scrape(int port) {
  absl::StatusOr<HttpResponse> response = HttpGet(port, "/metrics");
  EXPECT_TRUE(response.ok()) << response.status();
  if (!response.ok()) return MetricsPage("");
  EXPECT_EQ(response->status, 200);
  return MetricsPage(response->body);
}

MetricsPage ScrapeUntil(int port, const std::string& series, double value, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  MetricsPage page = Scrape(port);
  while (page[series] != value && absl::Now() < deadline) page = Scrape(port);
  EXPECT_EQ(page[series], value) << series << " never reached " << value;
  return Scrape(port);
}

}  // namespace sluice::testing
