#include "handlers/batch_scheduler.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "handlers/call_testing.h"
#include "models/model_testing.h"

namespace sluice {
namespace {

using ::sluice::testing::FakeClock;
using ::sluice::testing::FakeStreamSink;
using ::sluice::testing::FakeUnarySink;
using ::sluice::testing::IntParam;
using ::sluice::testing::MakeRequest;
using ::sluice::testing::ManualTimers;
using ::sluice::testing::SummaryCollector;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::Duration kWait = absl::Seconds(20);

struct FakeInput {
  int64_t id = 0;
  int64_t tokens = 0;
  int64_t error_at = -1;
  int64_t prefill = 0;
};

struct FakeState {
  FakeInput input;
  int64_t prefill_left = 0;
  int64_t produced = 0;
};

// FakeBatched: a batched model that records every call the scheduler makes.
// Each sequence spends `prefill` steps without output, then emits `tokens`
// chunks "<i> "; at chunk `error_at` it fails (only that sequence).
class FakeBatched final : public BatchedModel<FakeInput, int64_t, FakeState> {
 public:
  const ParameterSchema& parameters() const override {
    static const ParameterSchema* const kSchema = new ParameterSchema({
        ParameterSpec::Int64("id", 0, 0, 1000, "the sequence's name in the model's records"),
        ParameterSpec::Int64("tokens", 5, 1, 1'000'000, "chunks to emit"),
        ParameterSpec::Int64("error_at", -1, -1, 1'000'000, "fail at this chunk"),
        ParameterSpec::Int64("prefill", 0, 0, 1000, "steps without output first"),
    });
    return *kSchema;
  }
  absl::StatusOr<FakeInput> Decode(const Request& r) const override {
    const ParameterValues& p = r.params();
    return FakeInput{p.GetInt64("id"), p.GetInt64("tokens"), p.GetInt64("error_at"),
                     p.GetInt64("prefill")};
  }
  absl::StatusOr<std::unique_ptr<FakeState>> Start(FakeInput input) override {
    MutexLock lock(&mu_);
    started_.push_back(input.id);
    auto state = std::make_unique<FakeState>();
    state->input = input;
    state->prefill_left = input.prefill;
    return state;
  }
  absl::Status Step(absl::Span<FakeState* const> batch, absl::Span<SequenceStep<int64_t>> out,
                    const CancellationToken& cancel) override {
    std::function<void(const CancellationToken&)> hook;
    int step;
    {
      MutexLock lock(&mu_);
      step = static_cast<int>(steps_.size());
      std::vector<int64_t>& ids = steps_.emplace_back();
      for (const FakeState* s : batch) {
        ids.push_back(s->input.id);
        ++steps_of_[s->input.id];
      }
      hook = on_step_;
    }
    if (hook) hook(cancel);
    if (step == throw_at_step_) throw std::runtime_error("the fake model's step broke");
    for (size_t i = 0; i < batch.size(); ++i) {
      FakeState& s = *batch[i];
      if (s.prefill_left > 0) {
        --s.prefill_left;
        continue;
      }
      if (s.produced == s.input.error_at) {
        out[i].error = absl::InternalError(absl::StrCat("fake failure at chunk ", s.produced));
        continue;
      }
      out[i].chunk = s.produced++;
      if (s.produced == s.input.tokens) {
        out[i].finish = FinishReason::kLength;
        out[i].usage = TokenUsage{7, static_cast<uint64_t>(s.produced)};
      }
    }
    return absl::OkStatus();
  }
  void Release(std::unique_ptr<FakeState> state) override {
    MutexLock lock(&mu_);
    ++released_[state->input.id];
  }
  uint64_t StateBytes(const FakeState&) const override { return 100; }
  absl::StatusOr<std::string> Encode(int64_t v) const override { return absl::StrCat(v, " "); }

  // What the scheduler did, for assertions.
  std::vector<std::vector<int64_t>> steps() const {
    MutexLock lock(&mu_);
    return steps_;
  }
  std::vector<int64_t> last_step() const {
    MutexLock lock(&mu_);
    return steps_.empty() ? std::vector<int64_t>() : steps_.back();
  }
  int steps_of(int64_t id) const {
    MutexLock lock(&mu_);
    auto it = steps_of_.find(id);
    return it == steps_of_.end() ? 0 : it->second;
  }
  int released(int64_t id) const {
    MutexLock lock(&mu_);
    auto it = released_.find(id);
    return it == released_.end() ? 0 : it->second;
  }
  std::vector<int64_t> started() const {
    MutexLock lock(&mu_);
    return started_;
  }
  void set_on_step(std::function<void(const CancellationToken&)> hook) {
    MutexLock lock(&mu_);
    on_step_ = std::move(hook);
  }
  void set_throw_at_step(int step) { throw_at_step_ = step; }

 private:
  mutable Mutex mu_;
  std::vector<std::vector<int64_t>> steps_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, int> steps_of_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, int> released_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> started_ ABSL_GUARDED_BY(mu_);
  std::function<void(const CancellationToken&)> on_step_ ABSL_GUARDED_BY(mu_);
  int throw_at_step_ = -1;
};

// The scheduler, driven one boundary at a time (RunStep) unless a test
// starts its loop; fake sinks, a fake clock and hand-fired timers.
class BatchSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(BatchLimits{/*max_batch=*/4}); }

  void TearDown() override {
    scheduler_->CancelAll(EndCause::kShutdown);
    while (scheduler_->RunStep()) {
    }
    EXPECT_TRUE(scheduler_->WaitIdle(absl::Now() + kWait));
  }

  void Make(BatchLimits limits, int queue_capacity = 16) {
    BatchOptions options;
    options.limits = limits;
    options.queue_capacity = queue_capacity;
    scheduler_ = std::make_unique<BatchScheduler>("fake", &model_, options, &clock_);
  }

  CallOptions Options(int64_t id) {
    CallOptions options;
    options.model = "fake";
    options.request_id = absl::StrCat("seq-", id);
    // Roomy enough that a reading client (whose writes complete on the fake
    // sink's own thread, a moment later) never fills it in these tests.
    options.stream_buffer_chunks = 1000;
    options.write_stall_timeout = absl::Hours(1);
    return options;
  }

  std::unique_ptr<BatchedModelBase::Sequence> Sequence(
      std::vector<std::pair<std::string, v1::Parameter>> params) {
    auto sequence = model_.PrepareSequence("fake", MakeRequest("fake", "", std::move(params)));
    EXPECT_TRUE(sequence.ok()) << sequence.status();
    return sequence.ok() ? *std::move(sequence) : nullptr;
  }

  // Stream: admits a stream of sequence `id` with `params`; its sink
  // completes writes at once unless `reads` is false.
  std::shared_ptr<StreamCall> Stream(int64_t id,
                                     std::vector<std::pair<std::string, v1::Parameter>> params,
                                     bool reads = true, CallOptions* options = nullptr) {
    params.emplace_back("id", IntParam(id));
    sinks_[id] = std::make_unique<FakeStreamSink>(/*auto_complete=*/reads);
    auto call = StreamCall::Create(options != nullptr ? *options : Options(id), &timers_, &stats_,
                                   sinks_[id].get(), summaries_.callback());
    sinks_[id]->set_call(call);
    EXPECT_TRUE(scheduler_->Admit(call, Sequence(std::move(params))).ok());
    return call;
  }

  FakeStreamSink& sink(int64_t id) { return *sinks_.at(id); }

  CallSummary SummaryOf(const std::string& request_id) {
    for (const CallSummary& s : summaries_.summaries()) {
      if (s.request_id == request_id) return s;
    }
    ADD_FAILURE() << "no summary for " << request_id;
    return CallSummary();
  }

  FakeBatched model_;
  FakeClock clock_;
  ManualTimers timers_;
  ModelStats stats_{"fake"};
  SummaryCollector summaries_;
  std::map<int64_t, std::unique_ptr<FakeStreamSink>> sinks_;  // outlive the calls
  std::unique_ptr<BatchScheduler> scheduler_;
};

TEST_F(BatchSchedulerTest, SequencesJoinAtAStepBoundary) {
  Stream(1, {{"tokens", IntParam(3)}});
  Stream(2, {{"tokens", IntParam(3)}});
  EXPECT_THAT(model_.started(), IsEmpty());  // nothing happens between boundaries
  ASSERT_TRUE(scheduler_->RunStep());
  EXPECT_THAT(model_.last_step(), ElementsAre(1, 2));
  Stream(3, {{"tokens", IntParam(3)}});
  ASSERT_TRUE(scheduler_->RunStep());
  EXPECT_THAT(model_.last_step(), ElementsAre(1, 2, 3));  // the newcomer joins at once
  EXPECT_EQ(scheduler_->held(), 3);
  EXPECT_EQ(scheduler_->state_bytes(), 300u);
}

TEST_F(BatchSchedulerTest, StreamsGetEveryChunkThenTheFinalMessage) {
  Stream(1, {{"tokens", IntParam(3)}});
  Stream(2, {{"tokens", IntParam(2)}, {"prefill", IntParam(2)}});
  while (scheduler_->RunStep()) {
  }
  ASSERT_TRUE(sink(1).WaitForFinish(kWait));
  ASSERT_TRUE(sink(2).WaitForFinish(kWait));
  EXPECT_TRUE(sink(1).finish_status()->ok());
  std::vector<v1::PredictChunk> written = sink(2).written();
  ASSERT_EQ(written.size(), 3u);
  EXPECT_EQ(written[0].output(), "0 ");
  EXPECT_EQ(written[1].output(), "1 ");
  EXPECT_EQ(written[2].finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(written[2].usage().output_chunks(), 2u);
  EXPECT_EQ(written[2].usage().input_tokens(), 7u);
  EXPECT_EQ(written[2].usage().output_tokens(), 2u);
  EXPECT_EQ(model_.steps_of(2), 4);  // two of prefill, two of output
  EXPECT_EQ(model_.released(1), 1);
  EXPECT_EQ(model_.released(2), 1);
  EXPECT_EQ(scheduler_->held(), 0);
  EXPECT_EQ(scheduler_->state_bytes(), 0u);
  EXPECT_EQ(scheduler_->stats().left(EndCause::kCompleted), 2u);
}

TEST_F(BatchSchedulerTest, WritesStartOffTheLoopThread) {
  // The test's thread is the loop here (RunStep): its deliveries decide the
  // writes, and the scheduler's write starter starts them.
  for (int64_t id = 1; id <= 4; ++id) Stream(id, {{"tokens", IntParam(5)}});
  while (scheduler_->RunStep()) {
  }
  for (int64_t id = 1; id <= 4; ++id) {
    ASSERT_TRUE(sink(id).WaitForFinish(kWait));
    EXPECT_TRUE(sink(id).finish_status()->ok());
    EXPECT_EQ(sink(id).written().size(), 6u);
    EXPECT_FALSE(sink(id).started_writes_on(std::this_thread::get_id()));
  }
}

TEST_F(BatchSchedulerTest, CancelledSequenceIsOutOfTheNextStep) {
  auto a = Stream(1, {{"tokens", IntParam(100)}});
  Stream(2, {{"tokens", IntParam(100)}});
  Stream(3, {{"tokens", IntParam(100)}});
  ASSERT_TRUE(scheduler_->RunStep());
  ASSERT_TRUE(scheduler_->RunStep());
  a->Cancel(EndCause::kClientCancelled);
  // The RPC is finished at once; the model's state waits for the boundary.
  ASSERT_TRUE(sink(1).WaitForFinish(kWait));
  EXPECT_EQ(sink(1).finish_status()->code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(model_.released(1), 0);
  ASSERT_TRUE(scheduler_->RunStep());
  EXPECT_EQ(model_.released(1), 1);
  EXPECT_THAT(model_.last_step(), ElementsAre(2, 3));
  ASSERT_TRUE(scheduler_->RunStep());
  EXPECT_EQ(model_.steps_of(1), 2);  // none after the cancel
  EXPECT_EQ(model_.released(1), 1);  // exactly once
  EXPECT_EQ(scheduler_->stats().sequence_steps_after_end(), 0u);
  a->OnRpcDone();
  ASSERT_TRUE(summaries_.WaitFor(1, kWait));
  EXPECT_EQ(SummaryOf("seq-1").cause, EndCause::kClientCancelled);
  EXPECT_EQ(SummaryOf("seq-1").stage, EndStage::kRunning);
}

TEST_F(BatchSchedulerTest, CancelDuringAStepCostsThatStepOnly) {
  auto a = Stream(1, {{"tokens", IntParam(100)}});
  Stream(2, {{"tokens", IntParam(100)}});
  ASSERT_TRUE(scheduler_->RunStep());
  model_.set_on_step([&](const CancellationToken&) { a->Cancel(EndCause::kClientCancelled); });
  ASSERT_TRUE(scheduler_->RunStep());  // the cancel lands in the step in flight
  model_.set_on_step(nullptr);
  EXPECT_EQ(model_.released(1), 1);  // released as soon as that step returned
  ASSERT_TRUE(scheduler_->RunStep());
  ASSERT_TRUE(sink(1).WaitForWrites(1, kWait));  // the writes start off the loop
  EXPECT_EQ(sink(1).written().size(), 1u);       // the second step's was not delivered
  EXPECT_THAT(model_.last_step(), ElementsAre(2));
  EXPECT_EQ(model_.steps_of(1), 2);
  EXPECT_EQ(scheduler_->stats().sequence_steps_after_end(), 1u);
  const Histogram::Snapshot after_end = scheduler_->stats().steps_after_end().snapshot();
  EXPECT_EQ(after_end.count, 1u);          // one sequence left...
  EXPECT_EQ(after_end.cumulative[0], 0u);  // ...with more than 0 steps after its end,
  EXPECT_EQ(after_end.cumulative[1], 1u);  // ...and at most 1
}

TEST_F(BatchSchedulerTest, StepTokenFiresWhenNoSequenceInItIsWanted) {
  auto a = Stream(1, {{"tokens", IntParam(100)}});
  auto b = Stream(2, {{"tokens", IntParam(100)}});
  bool cancelled_after_first = true;
  bool cancelled_after_both = false;
  model_.set_on_step([&](const CancellationToken& token) {
    a->Cancel(EndCause::kClientCancelled);
    cancelled_after_first = token.IsCancelled();
    b->Cancel(EndCause::kDeadline);
    cancelled_after_both = token.IsCancelled();
  });
  ASSERT_TRUE(scheduler_->RunStep());
  EXPECT_FALSE(cancelled_after_first);  // b still wanted it
  EXPECT_TRUE(cancelled_after_both);
  EXPECT_EQ(model_.released(1), 1);
  EXPECT_EQ(model_.released(2), 1);
}

TEST_F(BatchSchedulerTest, SlowReaderSitsOutWhileTheOthersKeepTheirPace) {
  CallOptions small = Options(1);
  small.stream_buffer_chunks = 2;
  Stream(1, {{"tokens", IntParam(100)}}, /*reads=*/false, &small);
  Stream(2, {{"tokens", IntParam(100)}});
  ASSERT_TRUE(scheduler_->RunStep());  // 1: a chunk in flight
  ASSERT_TRUE(scheduler_->RunStep());  // 1: a second chunk fills its buffer
  EXPECT_EQ(scheduler_->sitting_out(), 1);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(scheduler_->RunStep());
  EXPECT_THAT(model_.last_step(), ElementsAre(2));
  EXPECT_EQ(model_.steps_of(1), 2);
  EXPECT_EQ(model_.steps_of(2), 5);
  EXPECT_EQ(scheduler_->held(), 2);  // it keeps its state while it sits out
  // The client reads one chunk: half the buffer drained, back in the batch.
  ASSERT_TRUE(sink(1).WaitForWrites(1, kWait));  // the writes start off the loop
  sink(1).CompleteWrite(true);
  EXPECT_EQ(scheduler_->sitting_out(), 0);
  ASSERT_TRUE(scheduler_->RunStep());
  EXPECT_THAT(model_.last_step(), ElementsAre(2, 1));
  // That chunk filled its buffer again (the client still has not read it).
  EXPECT_EQ(scheduler_->sitting_out(), 1);
  EXPECT_EQ(scheduler_->stats().sat_out(), 2u);
}

TEST_F(BatchSchedulerTest, SittingOutSequenceCancelledIsReleasedAtTheNextBoundary) {
  CallOptions small = Options(1);
  small.stream_buffer_chunks = 2;
  auto a = Stream(1, {{"tokens", IntParam(100)}}, /*reads=*/false, &small);
  ASSERT_TRUE(scheduler_->RunStep());
  ASSERT_TRUE(scheduler_->RunStep());
  ASSERT_EQ(scheduler_->sitting_out(), 1);
  a->Cancel(EndCause::kStalled);
  ASSERT_TRUE(scheduler_->RunStep());  // a boundary with nothing but a release
  EXPECT_EQ(model_.released(1), 1);
  EXPECT_EQ(model_.steps().size(), 2u);
  EXPECT_EQ(scheduler_->stats().left(EndCause::kStalled), 1u);
  ASSERT_TRUE(sink(1).WaitForWrites(1, kWait));
  sink(1).CompleteWrite(false);  // gRPC fails the stuck write after the reset
}

TEST_F(BatchSchedulerTest, PerSequenceErrorEndsOnlyThatCall) {
  Stream(1, {{"tokens", IntParam(5)}, {"error_at", IntParam(2)}});
  Stream(2, {{"tokens", IntParam(5)}});
  while (scheduler_->RunStep()) {
  }
  ASSERT_TRUE(sink(1).WaitForFinish(kWait));
  EXPECT_EQ(sink(1).finish_status()->code(), absl::StatusCode::kInternal);
  EXPECT_THAT(sink(1).finish_status()->message(), HasSubstr("fake failure at chunk 2"));
  EXPECT_EQ(sink(1).written().size(), 2u);  // what it made before is delivered
  ASSERT_TRUE(sink(2).WaitForFinish(kWait));
  EXPECT_TRUE(sink(2).finish_status()->ok());
  EXPECT_EQ(model_.released(1), 1);
  EXPECT_EQ(scheduler_->stats().left(EndCause::kError), 1u);
}

TEST_F(BatchSchedulerTest, ThrowingStepEndsItsBatchOnlyAndTheLoopGoesOn) {
  Stream(1, {{"tokens", IntParam(100)}});
  Stream(2, {{"tokens", IntParam(100)}});
  model_.set_throw_at_step(1);
  ASSERT_TRUE(scheduler_->RunStep());
  ASSERT_TRUE(scheduler_->RunStep());  // throws
  for (int64_t id : {1, 2}) {
    ASSERT_TRUE(sink(id).WaitForFinish(kWait));
    EXPECT_EQ(sink(id).finish_status()->code(), absl::StatusCode::kInternal);
    EXPECT_THAT(sink(id).finish_status()->message(),
                HasSubstr("failed a step of 2 sequences: threw: the fake model's step broke"));
    EXPECT_EQ(model_.released(id), 1);
  }
  Stream(3, {{"tokens", IntParam(2)}});
  while (scheduler_->RunStep()) {
  }
  ASSERT_TRUE(sink(3).WaitForFinish(kWait));
  EXPECT_TRUE(sink(3).finish_status()->ok());
}

TEST_F(BatchSchedulerTest, QueuedCallCancelledNeverStarts) {
  Make(BatchLimits{/*max_batch=*/1, /*max_sequences=*/1});
  Stream(1, {{"tokens", IntParam(100)}});
  auto queued = Stream(2, {{"tokens", IntParam(100)}});
  ASSERT_TRUE(scheduler_->RunStep());
  EXPECT_EQ(scheduler_->queued(), 1);
  queued->Cancel(EndCause::kClientCancelled);
  EXPECT_EQ(scheduler_->queued(), 0);  // left the queue at once
  queued->OnRpcDone();
  ASSERT_TRUE(summaries_.WaitFor(1, kWait));  // reported at once: nothing to release
  EXPECT_EQ(SummaryOf("seq-2").stage, EndStage::kQueued);
  ASSERT_TRUE(scheduler_->RunStep());
  EXPECT_THAT(model_.started(), ElementsAre(1));
  EXPECT_EQ(model_.released(2), 0);
}

TEST_F(BatchSchedulerTest, FullQueueIsRefusedAtOnce) {
  Make(BatchLimits{/*max_batch=*/1}, /*queue_capacity=*/1);
  Stream(1, {});
  auto call = StreamCall::Create(Options(2), &timers_, &stats_, nullptr, nullptr);
  absl::Status status = scheduler_->Admit(call, Sequence({{"id", IntParam(2)}}));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("model fake is at capacity"));
}

TEST_F(BatchSchedulerTest, HeldSequencesAndStateBudgetBoundWhoJoins) {
  BatchLimits limits;
  limits.max_batch = 8;
  limits.max_state_bytes = 250;  // the fake's sequences hold 100 bytes each
  Make(limits);
  for (int64_t id = 1; id <= 5; ++id) Stream(id, {{"tokens", IntParam(100)}});
  ASSERT_TRUE(scheduler_->RunStep());
  EXPECT_THAT(model_.last_step(), ElementsAre(1, 2, 3));
  EXPECT_EQ(scheduler_->queued(), 2);
  EXPECT_EQ(scheduler_->state_bytes(), 300u);
}

TEST_F(BatchSchedulerTest, DeadlineIsCheckedOnTheSchedulersClock) {
  CallOptions options = Options(1);
  options.deadline = absl::Now() + absl::Hours(1);
  Stream(1, {{"tokens", IntParam(100)}}, true, &options);
  Stream(2, {{"tokens", IntParam(100)}});
  ASSERT_TRUE(scheduler_->RunStep());
  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(scheduler_->RunStep());
  EXPECT_THAT(model_.last_step(), ElementsAre(2));
  EXPECT_EQ(model_.released(1), 1);
  ASSERT_TRUE(sink(1).WaitForFinish(kWait));
  EXPECT_EQ(sink(1).finish_status()->code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(BatchSchedulerTest, NewcomersJoinOnlyWhenTheStepHasRoom) {
  Make(BatchLimits{/*max_batch=*/2, /*max_sequences=*/3});
  for (int64_t id = 1; id <= 3; ++id) Stream(id, {{"tokens", IntParam(100)}});
  ASSERT_TRUE(scheduler_->RunStep());  // 1, 2 join; 3 waits in the queue (batch full)
  ASSERT_TRUE(scheduler_->RunStep());
  ASSERT_TRUE(scheduler_->RunStep());
  std::vector<std::vector<int64_t>> steps = model_.steps();
  EXPECT_THAT(steps[0], ElementsAre(1, 2));
  EXPECT_THAT(steps[1], ElementsAre(1, 2));  // no room for 3 while 1 and 2 are ready
  EXPECT_EQ(scheduler_->queued(), 1);
}

TEST_F(BatchSchedulerTest, UnaryCallsJoinBatchesToo) {
  FakeUnarySink unary_sink;
  auto unary = UnaryCall::Create(Options(1), &timers_, &stats_, &unary_sink, nullptr);
  ASSERT_TRUE(
      scheduler_->Admit(unary, Sequence({{"id", IntParam(1)}, {"tokens", IntParam(3)}})).ok());
  Stream(2, {{"tokens", IntParam(3)}});
  while (scheduler_->RunStep()) {
  }
  EXPECT_THAT(model_.steps()[0], ElementsAre(1, 2));
  ASSERT_TRUE(unary_sink.WaitForFinish(kWait));
  ASSERT_TRUE(unary_sink.finish_status()->ok());
  EXPECT_EQ(unary_sink.response()->output(), "0 1 2 ");
  EXPECT_EQ(unary_sink.response()->usage().output_tokens(), 3u);
}

TEST_F(BatchSchedulerTest, LoopShutdownWithAFullBatchReleasesEverySequence) {
  // The loop thread this time: a step that runs until its token fires.
  Notification in_step;
  model_.set_on_step([&](const CancellationToken& token) {
    in_step.Notify();
    while (!token.WaitForCancellation(absl::Seconds(1))) {
    }
  });
  for (int64_t id = 1; id <= 6; ++id) Stream(id, {{"tokens", IntParam(100)}});
  scheduler_->Start();
  ASSERT_TRUE(in_step.WaitForNotificationWithTimeout(kWait));
  scheduler_->CancelAll(EndCause::kShutdown);  // 4 in the step, 2 queued
  ASSERT_TRUE(scheduler_->WaitIdle(absl::Now() + kWait));
  EXPECT_TRUE(scheduler_->Stop(absl::Now() + kWait));
  for (int64_t id = 1; id <= 6; ++id) {
    ASSERT_TRUE(sink(id).WaitForFinish(kWait));
    EXPECT_EQ(sink(id).finish_status()->code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(model_.released(id), id <= 4 ? 1 : 0) << id;
  }
  EXPECT_EQ(model_.steps().size(), 1u);
  EXPECT_EQ(scheduler_->stats().left(EndCause::kShutdown), 4u);
}

}  // namespace
}  // namespace sluice
