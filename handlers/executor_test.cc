#include "handlers/executor.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "handlers/call_testing.h"
#include "models/model_testing.h"
#include "models/synthetic.h"

namespace sluice {
namespace {

using ::sluice::testing::FakeStreamSink;
using ::sluice::testing::IntParam;
using ::sluice::testing::MakeRequest;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(20);

// Calls that hang until cancelled keep their slots; the tests fill slots and
// queue with them.
class ExecutorTest : public ::testing::Test {
 protected:
  void Start(ExecutorOptions options) {
    executor_ = std::make_unique<Executor>("synthetic", options);
    executor_->Start();
  }

  void TearDown() override {
    executor_->CancelAll(EndCause::kShutdown);
    EXPECT_TRUE(executor_->WaitIdle(absl::Now() + kWait));
    EXPECT_TRUE(executor_->Stop(absl::Now() + kWait));
  }

  // AdmitHanging: admits a call that hangs until cancelled; the call, or
  // the executor's refusal.
  absl::StatusOr<std::shared_ptr<StreamCall>> AdmitHanging() {
    auto prepared = model_.Prepare(
        "synthetic",
        MakeRequest("synthetic", "", {{"tokens", IntParam(1)}, {"hang_at", IntParam(0)}}));
    EXPECT_TRUE(prepared.ok());
    sinks_.push_back(std::make_unique<FakeStreamSink>(/*auto_complete=*/true));
    CallOptions options;
    options.model = "synthetic";
    auto call = StreamCall::Create(options, &timers_, &stats_, sinks_.back().get(), nullptr);
    sinks_.back()->set_call(call);
    if (absl::Status s = executor_->Admit(call, *std::move(prepared)); !s.ok()) return s;
    return call;
  }

  TimerQueue timers_;
  SyntheticModel model_;
  ModelStats stats_{"synthetic"};
  std::vector<std::unique_ptr<FakeStreamSink>> sinks_;  // outlive the executor's calls
  std::unique_ptr<Executor> executor_;
};

TEST_F(ExecutorTest, FillsSlotsThenQueueThenRefuses) {
  Start(ExecutorOptions{1, 2, 3});
  std::vector<std::shared_ptr<StreamCall>> calls;
  for (int i = 0; i < 5; ++i) {
    auto call = AdmitHanging();
    ASSERT_TRUE(call.ok()) << i;
    calls.push_back(*call);
  }
  EXPECT_EQ(executor_->active(), 2);
  EXPECT_EQ(executor_->queued(), 3);
  absl::Status status = AdmitHanging().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("model synthetic is at capacity"));
  EXPECT_THAT(status.message(), HasSubstr("3 queued"));
}

TEST_F(ExecutorTest, EndedCallPromotesTheNextInFifoOrder) {
  Start(ExecutorOptions{2, 1, 3});
  auto first = AdmitHanging();
  auto second = AdmitHanging();
  auto third = AdmitHanging();
  ASSERT_TRUE(first.ok() && second.ok() && third.ok());
  ASSERT_TRUE(model_.stats().WaitForStarted(1, kWait));
  EXPECT_EQ(executor_->queued(), 2);

  (*first)->Cancel(EndCause::kClientCancelled);
  ASSERT_TRUE(model_.stats().WaitForStarted(2, kWait));
  EXPECT_EQ(executor_->active(), 1);
  EXPECT_EQ(executor_->queued(), 1);
  // The second call (not the third) got the slot: cancelling the third
  // leaves one started generator alive.
  (*third)->Cancel(EndCause::kClientCancelled);
  EXPECT_EQ(executor_->queued(), 0);
  EXPECT_EQ(model_.stats().started(), 2);
  EXPECT_EQ(model_.stats().live(), 1);
}

TEST_F(ExecutorTest, ZeroQueueRefusesWhenSlotsAreFull) {
  Start(ExecutorOptions{1, 1, 0});
  ASSERT_TRUE(AdmitHanging().ok());
  EXPECT_EQ(AdmitHanging().status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(ExecutorTest, CancelAllEndsQueuedAndActiveCalls) {
  Start(ExecutorOptions{2, 2, 8});
  std::vector<std::shared_ptr<StreamCall>> calls;
  for (int i = 0; i < 6; ++i) {
    auto call = AdmitHanging();
    ASSERT_TRUE(call.ok()) << i;
    calls.push_back(*call);
  }
  ASSERT_TRUE(model_.stats().WaitForStarted(2, kWait));
  executor_->CancelAll(EndCause::kShutdown);
  ASSERT_TRUE(executor_->WaitIdle(absl::Now() + kWait));
  EXPECT_EQ(executor_->active(), 0);
  EXPECT_EQ(executor_->queued(), 0);
  ASSERT_TRUE(model_.stats().WaitForReleased(2, kWait));
  EXPECT_EQ(model_.stats().started(), 2);  // the four queued calls never started
  for (auto& sink : sinks_) {
    ASSERT_TRUE(sink->WaitForFinish(kWait));
    EXPECT_EQ(sink->finish_status()->code(), absl::StatusCode::kUnavailable);
  }
}

// PacedModel: each generator emits `chunks` chunks, chunk i at start + i *
// interval (Step::WaitUntil in between), and counts a step that comes before
// the time it asked for.
class PacedModel final : public Model<int, int> {
 public:
  PacedModel(int chunks, absl::Duration interval) : chunks_(chunks), interval_(interval) {}
  absl::StatusOr<int> Decode(const Request&) const override { return 0; }
  absl::StatusOr<std::unique_ptr<Generator<int>>> Predict(int, const CancellationToken&) override {
    return std::unique_ptr<Generator<int>>(std::make_unique<Gen>(this));
  }
  absl::StatusOr<std::string> Encode(int i) const override { return std::to_string(i); }
  int early() const { return early_.load(); }

 private:
  struct Gen final : public Generator<int> {
    explicit Gen(PacedModel* m) : model(m), start(absl::Now()) {}
    Step<int> Next() override {
      if (next == model->chunks_) return Step<int>::Done();
      const absl::Time due = start + next * model->interval_;
      const absl::Time now = absl::Now();
      if (now < due) {
        if (waited) ++model->early_;  // resumed before its time
        waited = true;
        return Step<int>::WaitUntil(due);
      }
      waited = false;
      return Step<int>::Chunk(next++);
    }
    PacedModel* const model;
    const absl::Time start;
    int next = 0;
    bool waited = false;
  };
  const int chunks_;
  const absl::Duration interval_;
  std::atomic<int> early_{0};
};

TEST_F(ExecutorTest, SleepingCallsAreResumedByTheWorkersOnTimeAndNeverEarly) {
  Start(ExecutorOptions{2, 64, 0});
  PacedModel paced(/*chunks=*/5, absl::Milliseconds(5));
  constexpr int kCalls = 40;
  std::vector<std::shared_ptr<StreamCall>> calls;
  for (int i = 0; i < kCalls; ++i) {
    auto prepared = paced.Prepare("paced", MakeRequest("paced", ""));
    ASSERT_TRUE(prepared.ok());
    sinks_.push_back(std::make_unique<FakeStreamSink>(/*auto_complete=*/true));
    CallOptions options;
    options.model = "paced";
    auto call = StreamCall::Create(options, &timers_, &stats_, sinks_.back().get(), nullptr);
    sinks_.back()->set_call(call);
    ASSERT_TRUE(executor_->Admit(call, *std::move(prepared)).ok());
    calls.push_back(call);
  }
  for (auto& sink : sinks_) {
    ASSERT_TRUE(sink->WaitForFinish(kWait));
    EXPECT_TRUE(sink->finish_status()->ok());
    EXPECT_EQ(sink->written().size(), 6u);  // five chunks and the final message
  }
  EXPECT_EQ(paced.early(), 0);
}

TEST_F(ExecutorTest, SleepingCallIsResumedWhileTheOtherWorkerIsStuckInAStep) {
  Start(ExecutorOptions{2, 4, 0});
  auto hanging = AdmitHanging();  // holds one worker until cancelled
  ASSERT_TRUE(hanging.ok());
  ASSERT_TRUE(model_.stats().WaitForStarted(1, kWait));
  auto prepared = model_.Prepare(
      "synthetic", MakeRequest("synthetic", "",
                               {{"tokens", IntParam(5)}, {"token_interval_us", IntParam(10000)}}));
  ASSERT_TRUE(prepared.ok());
  FakeStreamSink sink(/*auto_complete=*/true);
  CallOptions options;
  options.model = "synthetic";
  auto paced = StreamCall::Create(options, &timers_, &stats_, &sink, nullptr);
  sink.set_call(paced);
  ASSERT_TRUE(executor_->Admit(paced, *std::move(prepared)).ok());
  ASSERT_TRUE(sink.WaitForFinish(kWait));
  EXPECT_TRUE(sink.finish_status()->ok());
  EXPECT_EQ(sink.written().size(), 6u);
  (*hanging)->Cancel(EndCause::kClientCancelled);
}

TEST_F(ExecutorTest, CancelsRacingTheWorkersThatResumeCallsEndEachCallOnce) {
  // Paced calls are resumed all the time (every 200 us); cancels come from
  // other threads meanwhile. A cancel that finds a call parked ends it on
  // its own thread, and must not end one a worker has just taken up: every
  // generator is released exactly once, and no turn runs on an ended call.
  Start(ExecutorOptions{2, 256, 0});
  constexpr int kCalls = 200;
  for (int round = 0; round < 5; ++round) {
    std::vector<std::shared_ptr<StreamCall>> calls;
    for (int i = 0; i < kCalls; ++i) {
      auto prepared = model_.Prepare(
          "synthetic",
          MakeRequest("synthetic", "",
                      {{"tokens", IntParam(1000000)}, {"token_interval_us", IntParam(200)}}));
      ASSERT_TRUE(prepared.ok());
      sinks_.push_back(std::make_unique<FakeStreamSink>(/*auto_complete=*/true));
      CallOptions options;
      options.model = "synthetic";
      auto call = StreamCall::Create(options, &timers_, &stats_, sinks_.back().get(), nullptr);
      sinks_.back()->set_call(call);
      ASSERT_TRUE(executor_->Admit(call, *std::move(prepared)).ok());
      calls.push_back(call);
    }
    ASSERT_TRUE(model_.stats().WaitForStarted((round + 1) * kCalls, kWait));
    std::vector<std::thread> cancellers;
    for (int t = 0; t < 4; ++t) {
      cancellers.emplace_back([&calls, t] {
        for (int i = t; i < kCalls; i += 4) calls[i]->Cancel(EndCause::kClientCancelled);
      });
    }
    for (std::thread& t : cancellers) t.join();
    ASSERT_TRUE(executor_->WaitIdle(absl::Now() + kWait));
    EXPECT_EQ(model_.stats().live(), 0);
    EXPECT_EQ(model_.stats().released(), model_.stats().started());
  }
}

TEST_F(ExecutorTest, StopReturnsFalseWhenAWorkerNeverReturns) {
  // A model step that ignores cancellation cannot be interrupted; Stop must
  // still return by its deadline (and say so). The stuck worker outlives
  // the test body, so everything it touches is leaked on purpose (held by
  // static pointers, so leak checkers see it as reachable).
  static Executor* stuck = new Executor("stuck", ExecutorOptions{1, 1, 0});
  stuck->Start();
  struct Forever final : public Model<int, int> {
    Notification entered, release, released;
    absl::StatusOr<int> Decode(const Request&) const override { return 0; }
    absl::StatusOr<std::unique_ptr<Generator<int>>> Predict(int,
                                                            const CancellationToken&) override {
      struct Gen final : public Generator<int> {
        explicit Gen(Forever* m) : model(m) {}
        ~Gen() override { model->released.Notify(); }
        Step<int> Next() override {
          model->entered.Notify();
          model->release.WaitForNotification();
          return Step<int>::Done();
        }
        Forever* model;
      };
      return std::unique_ptr<Generator<int>>(std::make_unique<Gen>(this));
    }
    absl::StatusOr<std::string> Encode(int) const override { return ""; }
  };
  static Forever* model = new Forever;
  static auto* sink = new FakeStreamSink(/*auto_complete=*/true);
  auto prepared = model->Prepare("stuck", MakeRequest("stuck", ""));
  ASSERT_TRUE(prepared.ok());
  CallOptions options;
  options.model = "stuck";
  auto call = StreamCall::Create(options, &timers_, &stats_, sink, nullptr);
  sink->set_call(call);
  ASSERT_TRUE(stuck->Admit(call, *std::move(prepared)).ok());
  ASSERT_TRUE(model->entered.WaitForNotificationWithTimeout(kWait));
  call->Cancel(EndCause::kShutdown);
  EXPECT_FALSE(stuck->Stop(absl::Now() + absl::Milliseconds(100)));
  // Let the step return; the generator is then released as usual.
  model->release.Notify();
  EXPECT_TRUE(model->released.WaitForNotificationWithTimeout(kWait));
  Start(ExecutorOptions{1, 1, 0});
}

}  // namespace
}  // namespace sluice
