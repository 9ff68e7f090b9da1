#include "models/synthetic.h"

#include <time.h>

#include "gtest/gtest.h"
#include "models/model_testing.h"

namespace sluice {
namespace {

using ::sluice::testing::IntParam;
using ::sluice::testing::MakeRequest;
using ::sluice::testing::RunModel;

absl::Duration ThreadCpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

TEST(SyntheticTest, EmitsTokensChunksThenLength) {
  SyntheticModel model;
  absl::StatusOr<testing::ModelRun> run =
      RunModel(model, MakeRequest("synthetic", "", {{"tokens", IntParam(3)}}));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->chunks, (std::vector<std::string>{"t0 ", "t1 ", "t2 "}));
  EXPECT_EQ(run->finish_reason, FinishReason::kLength);
  EXPECT_EQ(model.stats().started(), 1);
  EXPECT_EQ(model.stats().released(), 1);
  EXPECT_EQ(model.stats().chunks(), 3);
}

TEST(SyntheticTest, ChunkBytesSetsChunkSize) {
  SyntheticModel model;
  absl::StatusOr<testing::ModelRun> run = RunModel(
      model,
      MakeRequest("synthetic", "", {{"tokens", IntParam(2)}, {"chunk_bytes", IntParam(100)}}));
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->chunks.size(), 2u);
  EXPECT_EQ(run->chunks[0].size(), 100u);
}

TEST(SyntheticTest, TokenCostBurnsCpuNotWallTime) {
  SyntheticModel model;
  const absl::Duration before = ThreadCpu();
  ASSERT_TRUE(
      RunModel(model, MakeRequest("synthetic", "",
                                  {{"tokens", IntParam(5)}, {"token_cost_us", IntParam(2000)}}))
          .ok());
  // 5 × 2 ms of this thread's CPU clock, measured by the model and by us.
  EXPECT_GE(ThreadCpu() - before, absl::Milliseconds(10));
  EXPECT_GE(model.stats().cpu_burned(), absl::Milliseconds(10));
}

TEST(SyntheticTest, BurnStopsEarlyWhenCancelled) {
  CancellationSource source;
  source.Cancel();
  const absl::Duration before = ThreadCpu();
  EXPECT_FALSE(BurnCpu(absl::Seconds(10), 1, source.token()).has_value());
  EXPECT_LT(ThreadCpu() - before, absl::Seconds(1));
}

TEST(SyntheticTest, FailAtReturnsInternalAtThatChunk) {
  SyntheticModel model;
  absl::StatusOr<testing::ModelRun> run = RunModel(
      model, MakeRequest("synthetic", "", {{"tokens", IntParam(5)}, {"fail_at", IntParam(2)}}));
  EXPECT_EQ(run.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(model.stats().chunks(), 2);
}

TEST(SyntheticTest, ThrowAtThrows) {
  SyntheticModel model;
  EXPECT_THROW(RunModel(model, MakeRequest("synthetic", "",
                                           {{"tokens", IntParam(5)}, {"throw_at", IntParam(0)}}))
                   .IgnoreError(),
               std::runtime_error);
  EXPECT_EQ(model.stats().released(), 1);  // the generator was still destroyed
}

TEST(SyntheticTest, HangAtBlocksUntilDeadline) {
  SyntheticModel model;
  CancellationSource source(absl::Now() + absl::Milliseconds(50));
  absl::StatusOr<testing::ModelRun> run = RunModel(
      model, MakeRequest("synthetic", "", {{"tokens", IntParam(5)}, {"hang_at", IntParam(1)}}),
      source.token());
  // The hanging step returns once the deadline passes; the model then keeps
  // going (the framework, not the model, discards steps after a cancel).
  EXPECT_TRUE(run.ok());
  EXPECT_GE(model.stats().chunks_after_cancel(), 1);
}

TEST(SyntheticTest, StepsAfterCancelAreCounted) {
  SyntheticModel model;
  CancellationSource source;
  source.Cancel();
  ASSERT_TRUE(
      RunModel(model, MakeRequest("synthetic", "", {{"tokens", IntParam(2)}}), source.token())
          .ok());
  EXPECT_EQ(model.stats().steps_after_cancel(), 3);  // two chunks and the final Done
}

TEST(SyntheticTest, IntervalPacesChunksWithWaitUntil) {
  SyntheticModel model;
  absl::StatusOr<std::unique_ptr<PreparedCall>> prepared = model.Prepare(
      "synthetic",
      MakeRequest("synthetic", "",
                  {{"tokens", IntParam(2)}, {"token_interval_us", IntParam(60'000'000)}}));
  ASSERT_TRUE(prepared.ok());
  absl::StatusOr<std::unique_ptr<EncodedGenerator>> gen = (*prepared)->Start(CancellationToken());
  ASSERT_TRUE(gen.ok());
  EXPECT_EQ((*gen)->Next().kind(), Step<std::string>::Kind::kChunk);  // the first is immediate
  Step<std::string> second = (*gen)->Next();
  ASSERT_EQ(second.kind(), Step<std::string>::Kind::kWait);
  EXPECT_GT(second.wait_until(), absl::Now() + absl::Seconds(50));
}

TEST(SyntheticTest, FaultsCanBeDisallowed) {
  SyntheticModel model(/*allow_faults=*/false);
  for (const char* fault : {"fail_at", "throw_at", "hang_at"}) {
    absl::StatusOr<testing::ModelRun> run = RunModel(
        model, MakeRequest("synthetic", "", {{"tokens", IntParam(3)}, {fault, IntParam(1)}}));
    EXPECT_EQ(run.status().code(), absl::StatusCode::kInvalidArgument) << fault;
  }
  EXPECT_TRUE(RunModel(model, MakeRequest("synthetic", "", {{"tokens", IntParam(3)}})).ok());
  EXPECT_EQ(model.stats().started(), 1);
}

TEST(SyntheticTest, OnReleaseReportsEachGenerator) {
  SyntheticModel model;
  std::vector<SyntheticModel::Release> releases;
  model.set_on_release([&](const SyntheticModel::Release& r) { releases.push_back(r); });
  v1::PredictRequest request = MakeRequest("synthetic", "", {{"tokens", IntParam(4)}});
  request.set_request_id("r1");
  ASSERT_TRUE(RunModel(model, request).ok());
  ASSERT_EQ(releases.size(), 1u);
  EXPECT_EQ(releases[0].request_id, "r1");
  EXPECT_EQ(releases[0].chunks, 4);
  EXPECT_FALSE(releases[0].cancelled);
}

}  // namespace
}  // namespace sluice
