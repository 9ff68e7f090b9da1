// End-to-end: batched calls over loopback. Many streams share each model
// step; a caller who leaves is out of the very next step. The witnesses are
// the batched model's own counters (which sequences each step held) and the
// server's accounting.

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/metrics_page.h"
#include "tests/test_server.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

constexpr absl::Duration kWait = absl::Seconds(60);

ServerOptions BatchOptions32() {
  ServerOptions options = TestServer::DefaultOptions();
  options.metrics_port = 0;
  ModelOptions batched;
  batched.executor.queue_capacity = 64;
  batched.batch.max_batch = 32;
  options.model_overrides["batched_synthetic"] = batched;
  return options;
}

class BatchTest : public ::testing::Test {
 protected:
  BatchTest() : server_(BatchOptions32()) {}

  const BatchedSyntheticModel::Stats& model() { return server_.batched().stats(); }
  const BatchScheduler& batcher() { return *server_.server().batcher("batched_synthetic"); }

  TestServer server_;
};

// Streams: `n` streams of batched_synthetic (`tokens` each, a step of 2 ms),
// each on its own thread. With `even_leave`, the even-numbered ones cancel
// when LetLeaversGo is called; the others read to the end.
class Streams {
 public:
  Streams(TestServer& server, int n, int tokens, bool even_leave) : stubs_(n), statuses_(n) {
    for (int i = 0; i < n; ++i) {
      stubs_[i] = v1::Inference::NewStub(server.NewChannel());
      threads_.emplace_back([this, i, tokens, even_leave] {
        const bool leaves = i % 2 == 0 && even_leave;
        OpenStream stream(
            *stubs_[i],
            BatchedSynthetic({{"tokens", tokens}, {"step_cost_us", 2000}}, absl::StrCat("s", i)),
            absl::Seconds(120));
        if (leaves) {
          // Leavers read (so they stay in the batch) until told to go.
          while (!go_.HasBeenNotified() && stream.ReadChunks(1)) {
          }
          stream.Cancel();
        }
        statuses_[i] = stream.Finish();
      });
    }
  }
  ~Streams() { Join(); }

  void LetLeaversGo() { go_.Notify(); }
  void Join() {
    go_.Notify();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  const grpc::Status& status(int i) const { return statuses_[i]; }

 private:
  std::vector<std::unique_ptr<v1::Inference::Stub>> stubs_;
  std::vector<grpc::Status> statuses_;
  std::vector<std::thread> threads_;
  Notification go_;
};

TEST_F(BatchTest, ThirtyTwoStreamsShareStepsAndLeaversAreOutOfTheNextStep) {
  constexpr int kStreams = 32;
  Streams streams(server_, kStreams, /*tokens=*/100000, /*even_leave=*/true);
  // Every stream joins; steps of all 32 follow.
  ASSERT_TRUE(model().WaitForStarted(kStreams, kWait));
  const int64_t joined = model().steps();
  ASSERT_TRUE(model().WaitForSteps(joined + 2, kWait));
  EXPECT_EQ(model().largest_batch(), kStreams);
  EXPECT_EQ(model().last_batch().size(), static_cast<size_t>(kStreams));

  // Half of them leave: once the server has released them, the next step
  // holds exactly the other half.
  streams.LetLeaversGo();
  ASSERT_TRUE(model().WaitForReleased(kStreams / 2, kWait));
  const int64_t after_release = model().steps();
  ASSERT_TRUE(model().WaitForSteps(after_release + 1, kWait));
  std::vector<std::string> stayers;
  for (int i = 1; i < kStreams; i += 2) stayers.push_back(absl::StrCat("s", i));
  EXPECT_THAT(model().last_batch(), UnorderedElementsAreArray(stayers));
  EXPECT_EQ(model().released(), kStreams / 2);  // nobody else left meanwhile

  // No sequence was computed after its caller left, but for the step in
  // flight when it did (at most one each).
  const BatchStats& stats = batcher().stats();
  EXPECT_LE(stats.sequence_steps_after_end(), static_cast<uint64_t>(kStreams / 2));
  const Histogram::Snapshot after_end = stats.steps_after_end().snapshot();
  EXPECT_EQ(after_end.count, static_cast<uint64_t>(kStreams / 2));
  EXPECT_EQ(after_end.cumulative[1], after_end.count);  // every one at most 1

  // The rest end with the server.
  server_.server().Shutdown(absl::ZeroDuration());
  streams.Join();
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_EQ(streams.status(i).error_code(),
              i % 2 == 0 ? grpc::StatusCode::CANCELLED : grpc::StatusCode::UNAVAILABLE)
        << i << ": " << streams.status(i).error_message();
  }
  const ModelStats& calls = server_.stats("batched_synthetic");
  ASSERT_TRUE(calls.WaitForNoneInFlight(kWait));
  EXPECT_EQ(calls.ended(EndCause::kClientCancelled) + calls.ended(EndCause::kDisconnected),
            static_cast<uint64_t>(kStreams / 2));
  EXPECT_EQ(calls.ended(EndCause::kShutdown), static_cast<uint64_t>(kStreams / 2));
  EXPECT_EQ(model().live(), 0);
}

TEST_F(BatchTest, StreamsCompleteWithEveryChunk) {
  constexpr int kStreams = 8;
  Streams streams(server_, kStreams, /*tokens=*/30, /*even_leave=*/false);
  streams.Join();
  for (int i = 0; i < kStreams; ++i) EXPECT_TRUE(streams.status(i).ok()) << i;
  const ModelStats& calls = server_.stats("batched_synthetic");
  ASSERT_TRUE(calls.WaitForEndedTotal(kStreams, kWait));
  EXPECT_EQ(calls.ended(EndCause::kCompleted), static_cast<uint64_t>(kStreams));
  EXPECT_EQ(batcher().stats().left(EndCause::kCompleted), static_cast<uint64_t>(kStreams));
  EXPECT_GT(model().largest_batch(), 1);  // they shared steps
}

TEST_F(BatchTest, UnaryPredictJoinsTheBatch) {
  absl::StatusOr<v1::PredictResponse> response =
      server_.client().Predict(BatchedSynthetic({{"tokens", 4}}));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->output(), "t0 t1 t2 t3 ");
  EXPECT_EQ(response->finish_reason(), v1::FINISH_REASON_LENGTH);
}

TEST_F(BatchTest, OneSequenceFailingEndsOnlyItsCall) {
  OpenStream other(server_.client().stub(), BatchedSynthetic({{"tokens", 50}}));
  StreamResult failing = server_.client().PredictStream(
      BatchedSynthetic({{"tokens", 50}, {"fail_at", 3}}), StreamOptions());
  EXPECT_EQ(failing.status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(failing.status.error_message(), HasSubstr("batched_synthetic failure at chunk 3"));
  EXPECT_EQ(failing.chunks, 3);
  EXPECT_TRUE(other.Finish().ok());
}

TEST_F(BatchTest, ThrowingStepEndsItsBatchAndTheServerGoesOn) {
  StreamResult thrown = server_.client().PredictStream(
      BatchedSynthetic({{"tokens", 50}, {"throw_at", 2}}), StreamOptions());
  EXPECT_EQ(thrown.status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(thrown.status.error_message(), HasSubstr("batched_synthetic exception at chunk 2"));
  StreamResult next =
      server_.client().PredictStream(BatchedSynthetic({{"tokens", 5}}), StreamOptions());
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  // Both sequences are released; the second one's release may follow its
  // client's OK by a moment (the batch loop releases after delivering).
  ASSERT_TRUE(model().WaitForReleased(2, kWait));
  EXPECT_EQ(model().live(), 0);
}

TEST_F(BatchTest, DeadlineEndsABatchedStream) {
  OpenStream stream(server_.client().stub(),
                    BatchedSynthetic({{"tokens", 100000}, {"step_cost_us", 1000}}),
                    absl::Milliseconds(300));
  EXPECT_EQ(stream.Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(model().WaitForReleased(1, kWait));
  EXPECT_LT(model().steps(), 1000);
}

TEST_F(BatchTest, HangingStepStopsWhenItsLastCallerLeaves) {
  // The step blocks until its cancellation token fires: when the only
  // caller in it leaves.
  grpc::Status status = StreamAndCancelAfter(server_.client().stub(),
                                             BatchedSynthetic({{"tokens", 10}, {"hang_at", 2}}), 2);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(model().WaitForReleased(1, kWait));
  StreamResult next =
      server_.client().PredictStream(BatchedSynthetic({{"tokens", 3}}), StreamOptions());
  EXPECT_TRUE(next.status.ok());
}

TEST_F(BatchTest, MetricsShowTheBatches) {
  Streams streams(server_, 4, /*tokens=*/20, /*even_leave=*/false);
  streams.Join();
  ASSERT_TRUE(server_.stats("batched_synthetic").WaitForEndedTotal(4, kWait));
  const MetricsPage page =
      ScrapeUntil(server_.server().metrics_port(),
                  "sluice_batch_sequences_left_total{model=\"batched_synthetic\","
                  "cause=\"completed\"}",
                  4, kWait);
  EXPECT_THAT(page.text(), HasSubstr("sluice_batch_size_bucket{model=\"batched_synthetic\""));
  EXPECT_THAT(page.text(), HasSubstr("sluice_batch_max_size{model=\"batched_synthetic\"} 32\n"));
  EXPECT_THAT(page.text(),
              HasSubstr("sluice_batch_sequence_steps_after_end_total{model=\"batched_synthetic\"} "
                        "0\n"));
  EXPECT_THAT(page.text(), HasSubstr("sluice_output_budget_bytes "));
}

}  // namespace
}  // namespace sluice::testing
