#ifndef SLUICE_TESTS_METRICS_PAGE_H_
#define SLUICE_TESTS_METRICS_PAGE_H_

// Scraping a server's /metrics page in tests.

#include <string>

#include "absl/time/time.h"
#include "tests/metrics_text.h"

namespace sluice::testing {

// Scrape: GET /metrics from 127.0.0.1:`port`; an empty page (and a test
// failure) if that fails.
MetricsPage Scrape(int port);

// ScrapeUntil: scrapes until `series` reads `value`, as an operator watching
// the page would see it happen, or `timeout` passes (a test failure). Returns
// the next page after the one that showed it: the server reads a page series
// by series while calls move, so on that page a series read before `series`
// may be older than it (calls_in_flight, read before queue_depth, can miss the
// call that queue_depth shows). Callers wait for a state that then holds still.
MetricsPage ScrapeUntil(int port, const std::string& series, double value,
                        absl::Duration timeout = absl::Seconds(30));

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_METRICS_PAGE_H_
