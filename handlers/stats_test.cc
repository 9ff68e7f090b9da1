#include "handlers/stats.h"

#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(HistogramTest, CountsAreCumulativeAndSumIsSeconds) {
  Histogram h({0.001, 0.01, 0.1});
  h.Observe(absl::Microseconds(500));
  h.Observe(absl::Milliseconds(5));
  h.Observe(absl::Milliseconds(5));
  h.Observe(absl::Seconds(1));
  Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{1, 3, 3}));
  EXPECT_EQ(s.count, 4u);
  EXPECT_NEAR(s.sum, 1.0105, 1e-9);
}

TEST(HistogramTest, BoundaryValueFallsInItsBucket) {
  Histogram h({0.001, 0.01});
  h.Observe(absl::Milliseconds(1));
  EXPECT_EQ(h.snapshot().cumulative[0], 1u);
}

TEST(ModelStatsTest, EndedCallsAreCountedByMethodCauseAndStage) {
  ModelStats stats("m");
  stats.RecordEnded(Method::kPredictStream, EndCause::kClientCancelled, EndStage::kQueued,
                    absl::StatusCode::kCancelled);
  stats.RecordEnded(Method::kPredictStream, EndCause::kClientCancelled, EndStage::kRunning,
                    absl::StatusCode::kCancelled);
  stats.RecordEnded(Method::kPredict, EndCause::kCompleted, EndStage::kRunning,
                    absl::StatusCode::kOk);
  EXPECT_EQ(stats.ended(Method::kPredictStream, EndCause::kClientCancelled, EndStage::kQueued), 1u);
  EXPECT_EQ(stats.ended(Method::kPredictStream, EndCause::kClientCancelled, EndStage::kRunning),
            1u);
  EXPECT_EQ(stats.ended(Method::kPredict, EndCause::kCompleted, EndStage::kRunning), 1u);
  EXPECT_EQ(stats.ended_total(), 3u);
  EXPECT_EQ(stats.requests(Method::kPredictStream, absl::StatusCode::kCancelled), 2u);
  EXPECT_EQ(stats.requests(Method::kPredict, absl::StatusCode::kOk), 1u);
}

TEST(ModelStatsTest, CallsAreInFlightFromStartUntilEndedPerMethod) {
  ModelStats stats("m");
  stats.RecordStarted(Method::kPredictStream);
  stats.RecordStarted(Method::kPredictStream);
  stats.RecordStarted(Method::kPredict);
  EXPECT_EQ(stats.in_flight(Method::kPredictStream), 2);
  EXPECT_EQ(stats.in_flight(Method::kPredict), 1);
  stats.RecordEnded(Method::kPredictStream, EndCause::kRejected, EndStage::kAdmission,
                    absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(stats.in_flight(Method::kPredictStream), 1);
  EXPECT_EQ(stats.in_flight(Method::kPredict), 1);
}

TEST(ModelStatsTest, ChunksAfterCancelAreCountedSeparately) {
  ModelStats stats("m");
  stats.RecordChunk(false);
  stats.RecordChunk(true);
  EXPECT_EQ(stats.chunks_generated(), 2u);
  EXPECT_EQ(stats.chunks_after_cancel(), 1u);
}

TEST(NamesTest, EveryCauseHasAName) {
  for (int i = 0; i < kNumEndCauses; ++i) {
    EXPECT_NE(EndCauseName(static_cast<EndCause>(i)), "unknown");
  }
  EXPECT_EQ(StatusCodeName(absl::StatusCode::kResourceExhausted), "RESOURCE_EXHAUSTED");
}

}  // namespace
}  // namespace sluice
