#include "tests/metrics_page.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/http_client.h"

namespace sluice::testing {

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
