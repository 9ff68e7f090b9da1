// Cancels at every point of a call's life, many times, with randomised
// timing, from several client threads at once: before the call is queued,
// while queued, at the first chunk, between chunks, during a write (large
// chunks the client does not read), together with the final chunk, and
// during shutdown. Run under --config=tsan and --config=asan as well as
// plainly: the sanitizers check for races, use-after-free and leaks; the test
// checks that every call ended exactly once with a status that fits, every
// generator was released, and the server's ended-call counts add up to the
// calls made.

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/test_server.h"

namespace sluice::testing {
namespace {

constexpr absl::Duration kCallDeadline = absl::Seconds(30);  // a hang fails the call, not the run

enum class CancelPoint {
  kBeforeQueued,    // cancelled as soon as the call starts
  kWhileQueued,     // cancelled at a random moment, typically behind the slots
  kAtFirstChunk,    // cancelled on reading the first chunk
  kBetweenChunks,   // cancelled after a random number of chunks
  kDuringWrite,     // large chunks, not read: cancelled with a write outstanding
  kWithFinalChunk,  // cancelled on reading the last output chunk
  kNever,           // read to the end
};
constexpr int kNumCancelPoints = 7;

// Jitter: a random busy-wait of up to `max`, to vary interleavings. Not a
// synchronisation: nothing waits for anything to happen.
void Jitter(std::mt19937& rng, absl::Duration max) {
  const absl::Time until = absl::Now() + absl::Nanoseconds(std::uniform_int_distribution<int64_t>(
                                             0, absl::ToInt64Nanoseconds(max))(rng));
  while (absl::Now() < until) {
  }
}

struct Outcome {
  std::atomic<int> calls{0};
  std::atomic<int> early_cancels{0};  // may be cancelled before being sent at all
  std::atomic<int> ok{0};
  std::atomic<int> cancelled{0};
  std::atomic<int> unavailable{0};
  std::atomic<int> other{0};
  std::string first_other;
};

// OneCall: one call to `model` (synthetic or batched_synthetic), cancelled
// at `point`.
void OneCall(v1::Inference::Stub& stub, const std::string& model, CancelPoint point,
             std::mt19937& rng, Outcome& out) {
  constexpr int kTokens = 12;
  const bool batched = model == "batched_synthetic";
  v1::PredictRequest request =
      point == CancelPoint::kDuringWrite
          ? Synthetic({{"tokens", 200}, {"chunk_bytes", 256 * 1024}}, "", model)
          : Synthetic({{"tokens", kTokens}, {batched ? "sequence_cost_us" : "token_cost_us", 50}},
                      "", model);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kCallDeadline));
  std::unique_ptr<grpc::ClientReader<v1::PredictChunk>> reader =
      stub.PredictStream(&context, request);
  ++out.calls;
  if (point == CancelPoint::kBeforeQueued || point == CancelPoint::kWhileQueued)
    ++out.early_cancels;
  v1::PredictChunk chunk;
  const int cancel_after = std::uniform_int_distribution<int>(1, kTokens - 1)(rng);
  int read = 0;
  switch (point) {
    case CancelPoint::kBeforeQueued:
      context.TryCancel();
      break;
    case CancelPoint::kWhileQueued:
      Jitter(rng, absl::Milliseconds(2));
      context.TryCancel();
      break;
    case CancelPoint::kDuringWrite:
      if (reader->Read(&chunk)) Jitter(rng, absl::Milliseconds(5));
      context.TryCancel();
      break;
    default:
      while (reader->Read(&chunk)) {
        if (chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) continue;
        ++read;
        if ((point == CancelPoint::kAtFirstChunk && read == 1) ||
            (point == CancelPoint::kBetweenChunks && read == cancel_after) ||
            (point == CancelPoint::kWithFinalChunk && read == kTokens)) {
          Jitter(rng, absl::Microseconds(200));
          context.TryCancel();
          break;
        }
      }
  }
  while (reader->Read(&chunk)) {
  }
  const grpc::Status status = reader->Finish();
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      ++out.ok;
      break;
    case grpc::StatusCode::CANCELLED:
      ++out.cancelled;
      break;
    case grpc::StatusCode::UNAVAILABLE:
      ++out.unavailable;
      break;
    default:
      if (out.other++ == 0)
        out.first_other = absl::StrCat(status.error_code(), " ", status.error_message());
  }
}

ServerOptions FewSlots() {
  ServerOptions options = TestServer::DefaultOptions();
  // Two workers and four slots for eight client threads: calls queue, and
  // every cancel point meets a busy server.
  options.model_overrides["synthetic"] = ModelOptions{ExecutorOptions{2, 4, 64}, {}, {}};
  // The batched model likewise: four sequences at most, the rest queued.
  ModelOptions batched;
  batched.executor.queue_capacity = 64;
  batched.batch.max_batch = 4;
  batched.batch.max_sequences = 4;
  options.model_overrides["batched_synthetic"] = batched;
  options.stream_buffer_chunks = 4;
  return options;
}

// RaceTest: the same storm against a generator model and a batched one.
class RaceTest : public ::testing::TestWithParam<std::string> {
 protected:
  // ExpectEveryModelStateReleased: the model released all it started.
  static void ExpectEveryModelStateReleased(TestServer& server, const std::string& model) {
    if (model == "batched_synthetic") {
      const BatchedSyntheticModel::Stats& stats = server.batched().stats();
      ASSERT_TRUE(stats.WaitForReleased(stats.started(), absl::Seconds(60)));
      EXPECT_EQ(stats.live(), 0);
    } else {
      const SyntheticModel::Stats& stats = server.synthetic().stats();
      ASSERT_TRUE(stats.WaitForReleased(stats.started(), absl::Seconds(60)));
      EXPECT_EQ(stats.live(), 0);
    }
  }
};

TEST_P(RaceTest, CancelAtEveryPointOfACallsLife) {
  const std::string model = GetParam();
  constexpr int kThreads = 8;
  constexpr int kCallsPerThread = 60;
  const absl::Time give_up = absl::Now() + absl::Minutes(3);  // bounded in time as well as count
  Outcome out;
  {
    TestServer server(FewSlots());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(1000 + t);
        auto channel = server.NewChannel();
        auto stub = v1::Inference::NewStub(channel);
        for (int i = 0; i < kCallsPerThread && absl::Now() < give_up; ++i) {
          const auto point = static_cast<CancelPoint>((t + i) % kNumCancelPoints);
          OneCall(*stub, model, point, rng, out);
        }
      });
    }
    for (auto& t : threads) t.join();

    const int calls = out.calls;
    EXPECT_EQ(out.other, 0) << out.first_other;
    EXPECT_EQ(out.ok + out.cancelled + out.unavailable, calls);
    EXPECT_GT(out.ok, 0);
    EXPECT_GT(out.cancelled, 0);
    // Every call the server saw ended exactly once in its accounting (a call
    // cancelled before it was sent never reaches the server), and every
    // generator or sequence it started was released.
    const ModelStats& stats = server.stats(model);
    ASSERT_TRUE(stats.WaitForNoneInFlight(absl::Seconds(60)));
    EXPECT_EQ(stats.ended_total(), stats.started_total());
    EXPECT_LE(stats.started_total(), static_cast<uint64_t>(calls));
    EXPECT_GE(stats.started_total(), static_cast<uint64_t>(calls - out.early_cancels));
    EXPECT_EQ(stats.requests(Method::kPredictStream, absl::StatusCode::kOk) +
                  stats.requests(Method::kPredictStream, absl::StatusCode::kCancelled),
              stats.started_total());
    ExpectEveryModelStateReleased(server, model);
    if (model == "synthetic") {
      EXPECT_LE(server.synthetic().stats().steps_after_cancel(),
                static_cast<int64_t>(out.cancelled.load()));
    } else {
      // At most the step in flight for each sequence whose caller left.
      const BatchStats& batch = server.server().batcher(model)->stats();
      EXPECT_LE(batch.sequence_steps_after_end(), static_cast<uint64_t>(out.cancelled.load()));
      const Histogram::Snapshot after_end = batch.steps_after_end().snapshot();
      EXPECT_EQ(after_end.cumulative[1], after_end.count);
    }
  }
}

TEST_P(RaceTest, CancelsRacingShutdown) {
  const std::string model = GetParam();
  // Calls start, get cancelled and finish while the server shuts down under
  // them; nothing hangs, every generator is released, every call is counted.
  constexpr int kThreads = 6;
  for (int round = 0; round < 5; ++round) {
    TestServer server(FewSlots());
    Outcome out;
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(round * 100 + t);
        auto channel = server.NewChannel();
        auto stub = v1::Inference::NewStub(channel);
        for (int i = 0; i < 200 && !stop; ++i) {
          OneCall(*stub, model, static_cast<CancelPoint>(rng() % kNumCancelPoints), rng, out);
        }
      });
    }
    std::mt19937 rng(round);
    if (model == "synthetic") {
      ASSERT_TRUE(server.synthetic().stats().WaitForStarted(5, absl::Seconds(30)));
    } else {
      ASSERT_TRUE(server.batched().stats().WaitForStarted(5, absl::Seconds(30)));
    }
    Jitter(rng, absl::Milliseconds(20));
    EXPECT_TRUE(server.server().Shutdown(absl::Milliseconds(50)));
    stop = true;
    for (auto& t : threads) t.join();
    EXPECT_EQ(out.other, 0) << out.first_other;
    EXPECT_EQ(
        model == "synthetic" ? server.synthetic().stats().live() : server.batched().stats().live(),
        0);
    // Every call the server saw is counted exactly once.
    EXPECT_EQ(server.stats(model).in_flight(Method::kPredictStream), 0);
    EXPECT_EQ(server.stats(model).ended_total(), server.stats(model).started_total());
    EXPECT_LE(server.stats(model).started_total(), static_cast<uint64_t>(out.calls.load()));
  }
}

INSTANTIATE_TEST_SUITE_P(GeneratorAndBatched, RaceTest,
                         ::testing::Values("synthetic", "batched_synthetic"));

}  // namespace
}  // namespace sluice::testing
