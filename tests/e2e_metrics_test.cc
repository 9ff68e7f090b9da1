// End-to-end: calls against a real server, then /metrics scraped over HTTP as
// Prometheus would, and the numbers checked against what the calls did.

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model_testing.h"
#include "tests/metrics_page.h"
#include "tests/test_server.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(30);
// One chunk, then a pause of an hour: the call holds its slot, no thread.
constexpr int64_t kHourUs = 3'600'000'000;

class MetricsTest : public ::testing::Test {
 protected:
  static ServerOptions Options() {
    ServerOptions options = TestServer::DefaultOptions();
    options.metrics_port = 0;
    // One call generates at a time, so a second one queues.
    options.model_overrides["synthetic"] = ModelOptions{ExecutorOptions{1, 1, 4}, {}, {}};
    return options;
  }

  MetricsPage Scrape() { return sluice::testing::Scrape(server_.server().metrics_port()); }
  MetricsPage ScrapeUntil(const std::string& series, double value) {
    return sluice::testing::ScrapeUntil(server_.server().metrics_port(), series, value, kWait);
  }

  // WaitForEnded: every call made so far on `model` has been accounted.
  void WaitForEnded(uint64_t n, const std::string& model = "synthetic") {
    ASSERT_TRUE(server_.stats(model).WaitForEndedTotal(n, kWait));
  }

  TestServer server_{Options()};
};

TEST_F(MetricsTest, CancelledStreamIsClientCancelledWhileRunning) {
  EXPECT_EQ(StreamAndCancelAfter(server_.client().stub(),
                                 Synthetic({{"tokens", 3000}, {"token_cost_us", 1000}}), 3)
                .error_code(),
            grpc::StatusCode::CANCELLED);
  WaitForEnded(1);
  MetricsPage page = Scrape();
  EXPECT_EQ(page["sluice_calls_ended_total{model=\"synthetic\",method=\"PredictStream\","
                 "cause=\"client_cancelled\",stage=\"running\"}"],
            1);
  EXPECT_EQ(page["sluice_requests_total{model=\"synthetic\",method=\"PredictStream\","
                 "code=\"CANCELLED\"}"],
            1);
  EXPECT_EQ(page["sluice_calls_in_flight{model=\"synthetic\",method=\"PredictStream\"}"], 0);
  // The server's count of chunks is the model's own.
  EXPECT_EQ(page["sluice_chunks_generated_total{model=\"synthetic\"}"],
            server_.synthetic().stats().chunks());
  EXPECT_LE(page["sluice_chunks_after_cancel_total{model=\"synthetic\"}"], 1);
}

TEST_F(MetricsTest, RejectedCallIsRejectedAtAdmission) {
  StreamResult result = server_.client().PredictStream(
      MakeRequest("charlm", "x", {{"max_tokens", IntParam(0)}}), StreamOptions());
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  WaitForEnded(1, "charlm");
  MetricsPage page = Scrape();
  EXPECT_EQ(page["sluice_calls_ended_total{model=\"charlm\",method=\"PredictStream\","
                 "cause=\"rejected\",stage=\"admission\"}"],
            1);
  EXPECT_EQ(page["sluice_requests_total{model=\"charlm\",method=\"PredictStream\","
                 "code=\"INVALID_ARGUMENT\"}"],
            1);
  EXPECT_EQ(page["sluice_calls_in_flight{model=\"charlm\",method=\"PredictStream\"}"], 0);
  EXPECT_EQ(page["sluice_chunks_generated_total{model=\"charlm\"}"], 0);
}

TEST_F(MetricsTest, CallsForUnknownModelsShareOneEmptyLabel) {
  for (const char* name : {"no-such-model", "another\"one\n"}) {
    EXPECT_EQ(
        server_.client().PredictStream(MakeRequest(name, "x"), StreamOptions()).status.error_code(),
        grpc::StatusCode::NOT_FOUND);
  }
  MetricsPage page = ScrapeUntil(
      "sluice_requests_total{model=\"\",method=\"PredictStream\",code=\"NOT_FOUND\"}", 2);
  EXPECT_EQ(page["sluice_calls_ended_total{model=\"\",method=\"PredictStream\","
                 "cause=\"rejected\",stage=\"admission\"}"],
            2);
  EXPECT_THAT(page.text(), Not(HasSubstr("no-such-model")));
  EXPECT_THAT(page.text(), Not(HasSubstr("another")));
}

TEST_F(MetricsTest, HistogramCountsMatchTheChunksOfCompletedStreams) {
  ASSERT_TRUE(server_.client().PredictStream(Synthetic({{"tokens", 20}}), {}).status.ok());
  ASSERT_TRUE(server_.client().PredictStream(Synthetic({{"tokens", 5}}), {}).status.ok());
  absl::StatusOr<v1::PredictResponse> unary = server_.client().Predict(Synthetic({{"tokens", 3}}));
  ASSERT_TRUE(unary.ok()) << unary.status();
  WaitForEnded(3);
  MetricsPage page = Scrape();
  EXPECT_EQ(page["sluice_calls_ended_total{model=\"synthetic\",method=\"PredictStream\","
                 "cause=\"completed\",stage=\"running\"}"],
            2);
  EXPECT_EQ(page["sluice_requests_total{model=\"synthetic\",method=\"Predict\",code=\"OK\"}"], 1);
  EXPECT_EQ(page["sluice_chunks_generated_total{model=\"synthetic\"}"], 28);
  // One first chunk per call; every other chunk follows a gap.
  EXPECT_EQ(page["sluice_time_to_first_chunk_seconds_count{model=\"synthetic\"}"], 3);
  EXPECT_EQ(page["sluice_inter_chunk_seconds_count{model=\"synthetic\"}"], 28 - 3);
  for (const char* family : {"sluice_time_to_first_chunk_seconds", "sluice_inter_chunk_seconds"}) {
    const std::string name(family);
    EXPECT_EQ(page[name + "_bucket{model=\"synthetic\",le=\"+Inf\"}"],
              page[name + "_count{model=\"synthetic\"}"])
        << name;
    EXPECT_GT(page[name + "_sum{model=\"synthetic\"}"], 0) << name;
    // Cumulative: no bucket holds fewer than the one below it.
    double below = 0;
    for (absl::string_view le : {"0.00005", "0.0001", "0.001", "0.01", "0.1", "1", "10", "+Inf"}) {
      const std::string bucket = absl::StrCat(name, "_bucket{model=\"synthetic\",le=\"", le, "\"}");
      ASSERT_TRUE(page.Has(bucket)) << bucket;
      EXPECT_GE(page[bucket], below) << bucket;
      below = page[bucket];
    }
  }
}

TEST_F(MetricsTest, GaugesShowOpenStreamsQueueAndWorkers) {
  // The first stream takes synthetic's only slot and pauses after a chunk;
  // the second waits in the queue behind it.
  OpenStream running(server_.client().stub(),
                     Synthetic({{"tokens", 10}, {"token_interval_us", kHourUs}}));
  ASSERT_TRUE(running.ReadChunks(1));
  OpenStream queued(server_.client().stub(),
                    Synthetic({{"tokens", 10}, {"token_interval_us", kHourUs}}));
  MetricsPage page = ScrapeUntil("sluice_queue_depth{model=\"synthetic\"}", 1);
  EXPECT_EQ(page["sluice_calls_in_flight{model=\"synthetic\",method=\"PredictStream\"}"], 2);
  EXPECT_EQ(page["sluice_running_calls{model=\"synthetic\"}"], 1);
  EXPECT_EQ(page["sluice_workers{model=\"synthetic\"}"], 1);
  EXPECT_EQ(page["sluice_workers{model=\"echo\"}"], 2);
  EXPECT_LE(page["sluice_busy_workers{model=\"synthetic\"}"], 1);

  // The queued call is cancelled, and accounted, before the running one lets
  // go of the slot: otherwise it could start in between.
  queued.Cancel();
  EXPECT_EQ(queued.Finish().error_code(), grpc::StatusCode::CANCELLED);
  WaitForEnded(1);
  running.Cancel();
  EXPECT_EQ(running.Finish().error_code(), grpc::StatusCode::CANCELLED);
  WaitForEnded(2);
  page = Scrape();
  EXPECT_EQ(page["sluice_calls_in_flight{model=\"synthetic\",method=\"PredictStream\"}"], 0);
  EXPECT_EQ(page["sluice_queue_depth{model=\"synthetic\"}"], 0);
  EXPECT_EQ(page["sluice_running_calls{model=\"synthetic\"}"], 0);
  EXPECT_EQ(page["sluice_calls_ended_total{model=\"synthetic\",method=\"PredictStream\","
                 "cause=\"client_cancelled\",stage=\"queued\"}"],
            1);
}

}  // namespace
}  // namespace sluice::testing
