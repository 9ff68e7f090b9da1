#include "service/server_metrics.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// MetricsTest: two served models and the unknown-model account, recorded
// into directly; the page is what the collector makes of them.
class MetricsTest : public ::testing::Test {
 protected:
  MetricsTest() {
    Add("echo", ExecutorOptions{3, 8, 8});
    Add("synthetic", ExecutorOptions{2, 8, 8});
  }

  ModelStats& stats(const std::string& model) { return *models_.at(model).stats; }

  std::string Render() {
    absl::StatusOr<std::string> page = RenderServerMetrics(models_, unknown_);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? *page : "";
  }

 private:
  void Add(const std::string& name, ExecutorOptions options) {
    ServedModel& served = models_[name];
    served.name = name;
    served.executor = std::make_unique<Executor>(name, options);
    served.stats = std::make_unique<ModelStats>(name);
  }

  std::map<std::string, ServedModel, std::less<>> models_;

 protected:
  ModelStats unknown_{""};
};

TEST_F(MetricsTest, EndedCallsAppearByModelMethodCauseStageAndCode) {
  stats("synthetic").RecordStarted(Method::kPredictStream);
  stats("synthetic")
      .RecordEnded(Method::kPredictStream, EndCause::kClientCancelled, EndStage::kRunning,
                   absl::StatusCode::kCancelled);
  const std::string page = Render();
  EXPECT_THAT(page,
              HasSubstr("sluice_calls_ended_total{model=\"synthetic\",method=\"PredictStream\","
                        "cause=\"client_cancelled\",stage=\"running\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("sluice_requests_total{model=\"synthetic\",method=\"PredictStream\","
                              "code=\"CANCELLED\"} 1\n"));
  // Combinations that never happened are left out.
  EXPECT_THAT(page, Not(HasSubstr("cause=\"completed\"")));
  EXPECT_THAT(page, Not(HasSubstr("code=\"OK\"")));
}

TEST_F(MetricsTest, CallsForUnknownModelsShareTheEmptyModelLabel) {
  unknown_.RecordStarted(Method::kPredict);
  unknown_.RecordEnded(Method::kPredict, EndCause::kRejected, EndStage::kAdmission,
                       absl::StatusCode::kNotFound);
  const std::string page = Render();
  EXPECT_THAT(page, HasSubstr("sluice_requests_total{model=\"\",method=\"Predict\","
                              "code=\"NOT_FOUND\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("sluice_calls_in_flight{model=\"\",method=\"Predict\"} 0\n"));
  // The unknown account has no executor, chunks or latencies.
  EXPECT_THAT(page, Not(HasSubstr("sluice_workers{model=\"\"}")));
  EXPECT_THAT(page, Not(HasSubstr("sluice_time_to_first_chunk_seconds_count{model=\"\"}")));
}

TEST_F(MetricsTest, InFlightCountsStartedCallsPerMethod) {
  stats("echo").RecordStarted(Method::kPredictStream);
  stats("echo").RecordStarted(Method::kPredictStream);
  stats("echo").RecordStarted(Method::kPredict);
  const std::string page = Render();
  EXPECT_THAT(page,
              HasSubstr("sluice_calls_in_flight{model=\"echo\",method=\"PredictStream\"} 2\n"));
  EXPECT_THAT(page, HasSubstr("sluice_calls_in_flight{model=\"echo\",method=\"Predict\"} 1\n"));
}

TEST_F(MetricsTest, ChunksAndLatenciesArePerModel) {
  stats("echo").RecordChunk(false);
  stats("echo").RecordChunk(false);
  stats("echo").RecordChunk(true);
  stats("echo").time_to_first_chunk().Observe(absl::Milliseconds(3));
  stats("echo").inter_chunk().Observe(absl::Microseconds(70));
  stats("echo").inter_chunk().Observe(absl::Seconds(60));
  const std::string page = Render();
  EXPECT_THAT(page, HasSubstr("sluice_chunks_generated_total{model=\"echo\"} 3\n"));
  EXPECT_THAT(page, HasSubstr("sluice_chunks_after_cancel_total{model=\"echo\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("sluice_chunks_generated_total{model=\"synthetic\"} 0\n"));
  EXPECT_THAT(page, HasSubstr("sluice_time_to_first_chunk_seconds_bucket{model=\"echo\","
                              "le=\"0.0025\"} 0\n"));
  EXPECT_THAT(page, HasSubstr("sluice_time_to_first_chunk_seconds_bucket{model=\"echo\","
                              "le=\"0.005\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("sluice_time_to_first_chunk_seconds_count{model=\"echo\"} 1\n"));
  // 70 µs lands in the 100 µs bucket; 60 s only in +Inf.
  EXPECT_THAT(page,
              HasSubstr("sluice_inter_chunk_seconds_bucket{model=\"echo\",le=\"0.0001\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("sluice_inter_chunk_seconds_bucket{model=\"echo\",le=\"10\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("sluice_inter_chunk_seconds_bucket{model=\"echo\",le=\"+Inf\"} 2\n"));
  EXPECT_THAT(page, HasSubstr("sluice_inter_chunk_seconds_sum{model=\"echo\"} 60.00007\n"));
}

TEST_F(MetricsTest, ExecutorGaugesArePerModel) {
  const std::string page = Render();
  EXPECT_THAT(page, HasSubstr("sluice_workers{model=\"echo\"} 3\n"));
  EXPECT_THAT(page, HasSubstr("sluice_workers{model=\"synthetic\"} 2\n"));
  EXPECT_THAT(page, HasSubstr("sluice_queue_depth{model=\"echo\"} 0\n"));
  EXPECT_THAT(page, HasSubstr("sluice_running_calls{model=\"echo\"} 0\n"));
  EXPECT_THAT(page, HasSubstr("sluice_busy_workers{model=\"echo\"} 0\n"));
}

TEST_F(MetricsTest, EveryFamilyIsDeclaredOnce) {
  const std::string page = Render();
  for (const char* family :
       {"sluice_requests_total", "sluice_calls_ended_total", "sluice_calls_in_flight",
        "sluice_chunks_generated_total", "sluice_chunks_after_cancel_total",
        "sluice_time_to_first_chunk_seconds", "sluice_inter_chunk_seconds", "sluice_queue_depth",
        "sluice_running_calls", "sluice_busy_workers", "sluice_workers"}) {
    const std::string type_line = std::string("# TYPE ") + family + " ";
    const size_t first = page.find(type_line);
    EXPECT_NE(first, std::string::npos) << family;
    EXPECT_EQ(page.find(type_line, first + 1), std::string::npos) << family;
  }
}

}  // namespace
}  // namespace sluice
