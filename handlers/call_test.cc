#include "handlers/call.h"

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "handlers/call_testing.h"
#include "handlers/executor.h"
#include "models/model_testing.h"
#include "models/synthetic.h"

namespace sluice {
namespace {

using ::sluice::testing::FakeStreamSink;
using ::sluice::testing::FakeUnarySink;
using ::sluice::testing::IntParam;
using ::sluice::testing::MakeRequest;
using ::sluice::testing::ManualTimers;
using ::sluice::testing::SummaryCollector;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(20);

v1::PredictRequest Synthetic(std::vector<std::pair<std::string, v1::Parameter>> params) {
  return MakeRequest("synthetic", "", std::move(params));
}

// A Call driven by a real Executor (one worker) against fake sinks: the
// generator, the scheduling and the cancellation are the real ones.
class CallTest : public ::testing::Test {
 protected:
  void SetUp() override { StartExecutor(ExecutorOptions{1, 4, 4}); }

  void TearDown() override {
    executor_->CancelAll(EndCause::kShutdown);
    EXPECT_TRUE(executor_->WaitIdle(absl::Now() + kWait));
    EXPECT_TRUE(executor_->Stop(absl::Now() + kWait));
  }

  void StartExecutor(ExecutorOptions options) {
    if (executor_ != nullptr) executor_->Stop();
    executor_ = std::make_unique<Executor>("synthetic", options);
    executor_->Start();
  }

  CallOptions Options() {
    CallOptions options;
    options.model = "synthetic";
    options.request_id = "req-1";
    options.stream_buffer_chunks = 4;
    options.write_stall_timeout = absl::Milliseconds(100);
    return options;
  }

  std::shared_ptr<StreamCall> Stream(const v1::PredictRequest& request, FakeStreamSink* sink) {
    return Stream(request, sink, Options());
  }
  std::shared_ptr<StreamCall> Stream(const v1::PredictRequest& request, FakeStreamSink* sink,
                                     CallOptions options) {
    absl::StatusOr<std::unique_ptr<PreparedCall>> prepared = model_.Prepare("synthetic", request);
    EXPECT_TRUE(prepared.ok()) << prepared.status();
    auto call =
        StreamCall::Create(std::move(options), timers_, &stats_, sink, summaries_.callback());
    sink->set_call(call);
    EXPECT_TRUE(executor_->Admit(call, *std::move(prepared)).ok());
    return call;
  }

  std::shared_ptr<UnaryCall> Unary(const v1::PredictRequest& request, FakeUnarySink* sink,
                                   CallOptions options) {
    absl::StatusOr<std::unique_ptr<PreparedCall>> prepared = model_.Prepare("synthetic", request);
    EXPECT_TRUE(prepared.ok()) << prepared.status();
    auto call =
        UnaryCall::Create(std::move(options), timers_, &stats_, sink, summaries_.callback());
    EXPECT_TRUE(executor_->Admit(call, *std::move(prepared)).ok());
    return call;
  }

  // Blocks until every admitted call is parked (no turn running or due).
  void WaitUntilParked() { ASSERT_TRUE(executor_->WaitQuiescent(absl::Now() + kWait)); }

  CallSummary OnlySummary() {
    EXPECT_TRUE(summaries_.WaitFor(1, kWait));
    std::vector<CallSummary> all = summaries_.summaries();
    EXPECT_EQ(all.size(), 1u);
    return all.empty() ? CallSummary() : all[0];
  }

  TimerQueue real_timers_;
  ManualTimers manual_timers_;
  Timers* timers_ = &real_timers_;
  SyntheticModel model_;
  ModelStats stats_{"synthetic"};
  SummaryCollector summaries_;
  std::unique_ptr<Executor> executor_;
};

TEST_F(CallTest, StreamDeliversEveryChunkThenFinalMessage) {
  FakeStreamSink sink(/*auto_complete=*/true);
  auto call = Stream(Synthetic({{"tokens", IntParam(10)}}), &sink);
  ASSERT_TRUE(sink.WaitForFinish(kWait));
  EXPECT_TRUE(sink.finish_status()->ok());
  std::vector<v1::PredictChunk> written = sink.written();
  ASSERT_EQ(written.size(), 11u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(written[i].index(), static_cast<uint64_t>(i));
    EXPECT_EQ(written[i].output(), "t" + std::to_string(i) + " ");
    EXPECT_EQ(written[i].finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
  }
  const v1::PredictChunk& last = written.back();
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(last.index(), 10u);
  EXPECT_EQ(last.usage().output_chunks(), 10u);
  EXPECT_EQ(last.usage().output_bytes(), 30u);
  EXPECT_EQ(last.request_id(), "req-1");
  EXPECT_TRUE(last.output().empty());

  call->OnRpcDone();
  CallSummary summary = OnlySummary();
  EXPECT_EQ(summary.cause, EndCause::kCompleted);
  EXPECT_EQ(summary.stage, EndStage::kRunning);
  EXPECT_EQ(summary.chunks, 10u);
  EXPECT_EQ(sink.finishes(), 1);
  EXPECT_TRUE(model_.stats().WaitForReleased(1, kWait));
  EXPECT_EQ(stats_.chunks_generated(), 10u);
}

TEST_F(CallTest, WriteCompletedBeforeStartWriteReturnsIsFinishedByTheWriter) {
  // gRPC may complete a write on another thread before StartWrite has
  // returned. The message must outlive StartWrite, the next write must not
  // start inside it (nesting one frame per chunk), and nothing is lost.
  FakeStreamSink sink;
  CallOptions options = Options();
  options.stream_buffer_chunks = 64;
  auto call = Stream(Synthetic({{"tokens", IntParam(200)}}), &sink, options);
  // The client reads nothing until the buffer is full and the generator
  // waits; then every write completes inside its StartWrite.
  ASSERT_TRUE(sink.WaitForWrites(1, kWait));
  WaitUntilParked();
  sink.set_completion(FakeStreamSink::Completion::kInline);
  sink.CompleteWrite(true);
  ASSERT_TRUE(sink.WaitForFinish(kWait));
  EXPECT_TRUE(sink.finish_status()->ok());
  std::vector<v1::PredictChunk> written = sink.written();
  ASSERT_EQ(written.size(), 201u);
  for (size_t i = 0; i < written.size(); ++i) EXPECT_EQ(written[i].index(), i);
  EXPECT_EQ(sink.max_start_write_depth(), 1);
  EXPECT_EQ(sink.finishes(), 1);
  call->OnRpcDone();
  EXPECT_EQ(OnlySummary().cause, EndCause::kCompleted);
}

TEST_F(CallTest, FullBufferPausesTheGenerator) {
  FakeStreamSink sink;  // the client reads nothing until the test says so
  auto call = Stream(Synthetic({{"tokens", IntParam(1000)}}), &sink);
  WaitUntilParked();
  // Four chunks fill the buffer (one of them being written); then no more.
  EXPECT_EQ(model_.stats().chunks(), 4);
  EXPECT_EQ(sink.written().size(), 1u);
  EXPECT_EQ(executor_->busy_workers(), 0);

  // Draining down to half the buffer lets the generator run again.
  sink.CompleteWrite(true);
  sink.CompleteWrite(true);
  WaitUntilParked();
  EXPECT_EQ(model_.stats().chunks(), 6);
  EXPECT_EQ(sink.written().size(), 3u);
}

TEST_F(CallTest, ChunksWaitingBehindAWriteCarryTheBufferHintAndTheLastFlushes) {
  FakeStreamSink sink;  // writes complete when the test says
  CallOptions options = Options();
  options.stream_buffer_chunks = 64;  // everything fits: the model finishes
  auto call = Stream(Synthetic({{"tokens", IntParam(4)}}), &sink, options);
  ASSERT_TRUE(model_.stats().WaitForReleased(1, kWait));
  // The first chunk found the write path idle and went alone; the other
  // three and the final message waited behind it.
  ASSERT_EQ(sink.written().size(), 1u);
  for (int i = 0; i < 4; ++i) sink.CompleteWrite(true);
  ASSERT_EQ(sink.written().size(), 5u);
  // Each message with another behind it may be held back by the transport;
  // the last one (the final message) sends them all.
  EXPECT_THAT(sink.buffer_hints(), ::testing::ElementsAre(false, true, true, true, false));
  EXPECT_EQ(sink.written().back().finish_reason(), v1::FINISH_REASON_LENGTH);
  sink.CompleteWrite(true);
  ASSERT_TRUE(sink.finish_status().has_value());
  EXPECT_TRUE(sink.finish_status()->ok());
  call->OnRpcDone();
  EXPECT_EQ(OnlySummary().cause, EndCause::kCompleted);
}

TEST_F(CallTest, CancelDropsChunksWaitingBehindAHintedWrite) {
  FakeStreamSink sink;
  auto call = Stream(Synthetic({{"tokens", IntParam(1000)}}), &sink);
  WaitUntilParked();  // four chunks: one being written, three waiting
  sink.CompleteWrite(true);
  ASSERT_THAT(sink.buffer_hints(), ::testing::ElementsAre(false, true));

  call->Cancel(EndCause::kClientCancelled);
  EXPECT_EQ(model_.stats().live(), 0);
  // The hinted write was handed to gRPC and completes; the two chunks
  // behind it are dropped, and the stream finishes cancelled.
  sink.CompleteWrite(true);
  EXPECT_EQ(sink.written().size(), 2u);
  ASSERT_TRUE(sink.finish_status().has_value());
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kCancelled);
  call->OnRpcDone();
  EXPECT_EQ(OnlySummary().cause, EndCause::kClientCancelled);
}

TEST_F(CallTest, HintedWriteThatDoesNotCompleteIsAStall) {
  timers_ = &manual_timers_;
  FakeStreamSink sink;
  CallOptions options = Options();
  options.write_stall_timeout = absl::ZeroDuration();  // any outstanding write is stalled
  auto call = Stream(Synthetic({{"tokens", IntParam(1000)}}), &sink, options);
  WaitUntilParked();
  sink.CompleteWrite(true);  // the next write carries the hint and never completes
  ASSERT_THAT(sink.buffer_hints(), ::testing::ElementsAre(false, true));
  WaitUntilParked();
  ASSERT_EQ(manual_timers_.pending(), 1u);
  manual_timers_.FireOnce();
  EXPECT_EQ(sink.try_cancels(), 1);
  EXPECT_EQ(model_.stats().live(), 0);
  sink.CompleteWrite(false);
  ASSERT_TRUE(sink.finish_status().has_value());
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(sink.finish_status()->message(), HasSubstr("did not read"));
  EXPECT_EQ(sink.written().size(), 2u);
  call->OnRpcDone();
  EXPECT_EQ(OnlySummary().cause, EndCause::kStalled);
}

TEST_F(CallTest, CancelWhileBlockedReleasesGeneratorBeforeReturning) {
  FakeStreamSink sink;
  auto call = Stream(Synthetic({{"tokens", IntParam(1000)}}), &sink);
  WaitUntilParked();
  ASSERT_EQ(model_.stats().live(), 1);

  call->Cancel(EndCause::kClientCancelled);
  // Released on this thread, before Cancel returned: no waiting involved.
  EXPECT_EQ(model_.stats().live(), 0);
  EXPECT_EQ(model_.stats().chunks(), 4);
  EXPECT_EQ(model_.stats().steps_after_cancel(), 0);

  // The write in flight fails (as gRPC fails it after a cancel); then Finish.
  EXPECT_FALSE(sink.finish_status().has_value());
  sink.CompleteWrite(false);
  ASSERT_TRUE(sink.finish_status().has_value());
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kCancelled);
  call->OnRpcDone();
  CallSummary summary = OnlySummary();
  EXPECT_EQ(summary.cause, EndCause::kClientCancelled);
  EXPECT_EQ(summary.stage, EndStage::kRunning);
  EXPECT_EQ(executor_->active(), 0);
}

TEST_F(CallTest, CancelMidStepStopsTheStepAndStartsNoOther) {
  FakeStreamSink sink(/*auto_complete=*/true);
  // Each chunk burns 10 s of CPU unless cancelled; the model polls its token.
  auto call =
      Stream(Synthetic({{"tokens", IntParam(5)}, {"token_cost_us", IntParam(10'000'000)}}), &sink);
  ASSERT_TRUE(model_.stats().WaitForStarted(1, kWait));
  call->Cancel(EndCause::kClientCancelled);
  // The RPC is finished at once, without waiting for the step in flight.
  ASSERT_TRUE(sink.finish_status().has_value());
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kCancelled);
  ASSERT_TRUE(model_.stats().WaitForReleased(1, kWait));
  EXPECT_EQ(model_.stats().chunks(), 0);
  EXPECT_EQ(model_.stats().steps_after_cancel(), 0);
  EXPECT_LT(model_.stats().cpu_burned(), absl::Seconds(5));
  call->OnRpcDone();
  EXPECT_EQ(OnlySummary().cause, EndCause::kClientCancelled);
}

TEST_F(CallTest, SinkCancelledIsNoticedBetweenChunks) {
  FakeStreamSink sink(/*auto_complete=*/true);
  sink.set_cancelled(true);  // ServerContext::IsCancelled() before OnCancel arrives
  auto call = Stream(Synthetic({{"tokens", IntParam(1000)}}), &sink);
  ASSERT_TRUE(sink.WaitForFinish(kWait));
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kCancelled);
  call->OnRpcDone();
  CallSummary summary = OnlySummary();
  EXPECT_EQ(summary.cause, EndCause::kClientCancelled);
  EXPECT_EQ(summary.stage, EndStage::kQueued);
  EXPECT_EQ(model_.stats().started(), 0);  // noticed before the model started
}

TEST_F(CallTest, ModelErrorFlushesOutputThenFinishesInternal) {
  FakeStreamSink sink(/*auto_complete=*/true);
  auto call = Stream(Synthetic({{"tokens", IntParam(10)}, {"fail_at", IntParam(3)}}), &sink);
  ASSERT_TRUE(sink.WaitForFinish(kWait));
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kInternal);
  EXPECT_THAT(sink.finish_status()->message(), HasSubstr("synthetic failure at chunk 3"));
  EXPECT_EQ(sink.written().size(), 3u);
  call->OnRpcDone();
  CallSummary summary = OnlySummary();
  EXPECT_EQ(summary.cause, EndCause::kError);
  EXPECT_TRUE(model_.stats().WaitForReleased(1, kWait));
}

TEST_F(CallTest, ModelExceptionBecomesInternal) {
  FakeStreamSink sink(/*auto_complete=*/true);
  auto call = Stream(Synthetic({{"tokens", IntParam(10)}, {"throw_at", IntParam(2)}}), &sink);
  ASSERT_TRUE(sink.WaitForFinish(kWait));
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kInternal);
  EXPECT_THAT(sink.finish_status()->message(), HasSubstr("threw"));
  EXPECT_THAT(sink.finish_status()->message(), HasSubstr("synthetic exception at chunk 2"));
  EXPECT_TRUE(model_.stats().WaitForReleased(1, kWait));
}

TEST_F(CallTest, StalledClientIsCancelledAndWorkerFreed) {
  timers_ = &manual_timers_;
  FakeStreamSink sink;  // never reads
  CallOptions options = Options();
  options.write_stall_timeout = absl::ZeroDuration();  // any outstanding write is stalled
  auto call = Stream(Synthetic({{"tokens", IntParam(1000)}}), &sink, options);
  WaitUntilParked();
  ASSERT_EQ(manual_timers_.pending(), 1u);  // the stall check
  manual_timers_.FireOnce();
  EXPECT_EQ(sink.try_cancels(), 1);
  EXPECT_EQ(model_.stats().live(), 0);  // released before TryCancel
  // gRPC fails the stuck write after the reset; then the call finishes.
  sink.CompleteWrite(false);
  ASSERT_TRUE(sink.finish_status().has_value());
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(sink.finish_status()->message(), HasSubstr("did not read"));
  call->OnRpcDone();
  EXPECT_EQ(OnlySummary().cause, EndCause::kStalled);
}

TEST_F(CallTest, FinishedStreamWhoseClientDoesNotReadIsStalledToo) {
  // The model finishes while its first write is still outstanding (a client
  // that never reads): the stream is ending, waiting on its client, and is
  // ended as stalled after the timeout, like one whose buffer is full.
  timers_ = &manual_timers_;
  FakeStreamSink sink;  // never reads
  CallOptions options = Options();
  options.stream_buffer_chunks = 64;  // everything fits: the model finishes
  options.write_stall_timeout = absl::ZeroDuration();
  auto call = Stream(Synthetic({{"tokens", IntParam(5)}}), &sink, options);
  ASSERT_TRUE(model_.stats().WaitForReleased(1, kWait));  // the model is done
  WaitUntilParked();
  ASSERT_EQ(manual_timers_.pending(), 1u);  // the stall check, armed by the ending
  manual_timers_.FireOnce();
  EXPECT_EQ(sink.try_cancels(), 1);
  sink.CompleteWrite(false);
  ASSERT_TRUE(sink.finish_status().has_value());
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(sink.finish_status()->message(), HasSubstr("did not read"));
  call->OnRpcDone();
  EXPECT_EQ(OnlySummary().cause, EndCause::kStalled);
}

TEST_F(CallTest, FailedStreamWhoseClientDoesNotReadIsStalled) {
  timers_ = &manual_timers_;
  FakeStreamSink sink;
  CallOptions options = Options();
  options.stream_buffer_chunks = 64;
  options.write_stall_timeout = absl::ZeroDuration();
  auto call =
      Stream(Synthetic({{"tokens", IntParam(5)}, {"fail_at", IntParam(2)}}), &sink, options);
  ASSERT_TRUE(model_.stats().WaitForReleased(1, kWait));
  WaitUntilParked();
  ASSERT_EQ(manual_timers_.pending(), 1u);
  manual_timers_.FireOnce();
  EXPECT_EQ(sink.try_cancels(), 1);
  sink.CompleteWrite(false);
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kCancelled);
  call->OnRpcDone();
  EXPECT_EQ(OnlySummary().cause, EndCause::kStalled);
}

TEST_F(CallTest, CancelAfterAModelErrorKeepsTheError) {
  // The error is decided while its output waits on the client; a cancel
  // that comes after it changes neither the cause nor the status.
  FakeStreamSink sink;
  CallOptions options = Options();
  options.stream_buffer_chunks = 64;
  auto call =
      Stream(Synthetic({{"tokens", IntParam(5)}, {"fail_at", IntParam(2)}}), &sink, options);
  ASSERT_TRUE(model_.stats().WaitForReleased(1, kWait));
  call->Cancel(EndCause::kClientCancelled);
  sink.CompleteWrite(false);  // gRPC fails the outstanding write after the cancel
  ASSERT_TRUE(sink.finish_status().has_value());
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kInternal);
  call->OnRpcDone();
  CallSummary summary = OnlySummary();
  EXPECT_EQ(summary.cause, EndCause::kError);
  EXPECT_EQ(summary.status.code(), absl::StatusCode::kInternal);
}

TEST_F(CallTest, SpentOutputBudgetPausesOtherStreamsUntilItDrains) {
  timers_ = &manual_timers_;
  OutputBudget budget(100);
  CallOptions options = Options();
  options.stream_buffer_chunks = 64;
  options.output_budget = &budget;
  // A client that does not read holds 120 bytes: the budget is spent.
  FakeStreamSink hog_sink;
  options.request_id = "hog";
  options.write_stall_timeout = absl::ZeroDuration();  // any outstanding write is stalled
  auto hog = Stream(Synthetic({{"tokens", IntParam(100)}, {"chunk_bytes", IntParam(60)}}),
                    &hog_sink, options);
  WaitUntilParked();
  EXPECT_EQ(budget.used(), 120u);
  EXPECT_EQ(model_.stats().chunks(), 2);  // paused on the budget, not on its 64-chunk buffer
  // A reader gets one chunk out, then waits for room (not for its client).
  FakeStreamSink reader_sink(/*auto_complete=*/true);
  options.request_id = "reader";
  options.write_stall_timeout = absl::Hours(1);
  auto reader = Stream(Synthetic({{"tokens", IntParam(3)}, {"chunk_bytes", IntParam(10)}}),
                       &reader_sink, options);
  ASSERT_TRUE(reader_sink.WaitForWrites(1, kWait));
  WaitUntilParked();
  EXPECT_EQ(budget.waiting(), 2);
  EXPECT_FALSE(reader_sink.finish_status().has_value());
  // The hog's stall check fires: it is ended, its bytes return, and the
  // reader goes on to the end.
  manual_timers_.FireOnce();
  hog_sink.CompleteWrite(false);
  ASSERT_TRUE(reader_sink.WaitForFinish(kWait));
  EXPECT_TRUE(reader_sink.finish_status()->ok());
  EXPECT_EQ(budget.used(), 0u);
  hog->OnRpcDone();
  reader->OnRpcDone();
  ASSERT_TRUE(summaries_.WaitFor(2, kWait));
  for (const CallSummary& s : summaries_.summaries()) {
    EXPECT_EQ(s.cause, s.request_id == "hog" ? EndCause::kStalled : EndCause::kCompleted)
        << s.request_id;
  }
}

TEST_F(CallTest, StallCheckBeforeTimeoutRearms) {
  timers_ = &manual_timers_;
  FakeStreamSink sink;
  CallOptions options = Options();
  options.write_stall_timeout = absl::Hours(1);
  auto call = Stream(Synthetic({{"tokens", IntParam(1000)}}), &sink, options);
  WaitUntilParked();
  ASSERT_EQ(manual_timers_.pending(), 1u);
  // Fired early (the outstanding write is young): nothing is cancelled, and
  // the check is scheduled again.
  EXPECT_EQ(manual_timers_.FireOnce(), 1);
  EXPECT_EQ(sink.try_cancels(), 0);
  EXPECT_EQ(model_.stats().live(), 1);
  EXPECT_EQ(manual_timers_.pending(), 1u);
  call->Cancel(EndCause::kClientCancelled);
  sink.CompleteWrite(false);
}

TEST_F(CallTest, PacedStreamDoesNotHoldTheWorker) {
  // One worker. A stream paced at one chunk per hour sleeps between chunks;
  // meanwhile another stream runs to completion on the same worker.
  FakeStreamSink slow_sink(/*auto_complete=*/true), fast_sink(/*auto_complete=*/true);
  auto slow =
      Stream(Synthetic({{"tokens", IntParam(3)}, {"token_interval_us", IntParam(3'600'000'000)}}),
             &slow_sink);
  ASSERT_TRUE(slow_sink.WaitForWrites(1, kWait));
  auto fast = Stream(Synthetic({{"tokens", IntParam(50)}}), &fast_sink);
  ASSERT_TRUE(fast_sink.WaitForFinish(kWait));
  EXPECT_TRUE(fast_sink.finish_status()->ok());
  EXPECT_FALSE(slow_sink.finish_status().has_value());
  // The sleeping stream is cancellable, and releases at once.
  WaitUntilParked();
  slow->Cancel(EndCause::kClientCancelled);
  EXPECT_EQ(model_.stats().live(), 0);
}

TEST_F(CallTest, QueuedCallCancelledNeverStarts) {
  StartExecutor(ExecutorOptions{1, 1, 4});
  FakeStreamSink busy_sink(true), queued_sink(true);
  auto busy = Stream(Synthetic({{"tokens", IntParam(1)}, {"hang_at", IntParam(0)}}), &busy_sink);
  ASSERT_TRUE(model_.stats().WaitForStarted(1, kWait));
  auto queued = Stream(Synthetic({{"tokens", IntParam(1)}}), &queued_sink);
  EXPECT_EQ(executor_->queued(), 1);

  queued->Cancel(EndCause::kClientCancelled);
  EXPECT_EQ(executor_->queued(), 0);
  ASSERT_TRUE(queued_sink.finish_status().has_value());
  EXPECT_EQ(queued_sink.finish_status()->code(), absl::StatusCode::kCancelled);
  queued->OnRpcDone();
  CallSummary summary = OnlySummary();
  EXPECT_EQ(summary.cause, EndCause::kClientCancelled);
  EXPECT_EQ(summary.stage, EndStage::kQueued);

  busy->Cancel(EndCause::kClientCancelled);
  ASSERT_TRUE(model_.stats().WaitForReleased(1, kWait));
  EXPECT_EQ(model_.stats().started(), 1);  // the cancelled call never reached the model
}

TEST_F(CallTest, QueuedCallPastDeadlineNeverStarts) {
  StartExecutor(ExecutorOptions{1, 1, 4});
  FakeStreamSink busy_sink(true), late_sink(true);
  auto busy = Stream(Synthetic({{"tokens", IntParam(1)}, {"hang_at", IntParam(0)}}), &busy_sink);
  ASSERT_TRUE(model_.stats().WaitForStarted(1, kWait));
  CallOptions options = Options();
  options.deadline = absl::Now() - absl::Milliseconds(1);
  auto late = Stream(Synthetic({{"tokens", IntParam(1)}}), &late_sink, options);
  busy->Cancel(EndCause::kClientCancelled);  // frees the slot: the late call gets its turn
  ASSERT_TRUE(late_sink.WaitForFinish(kWait));
  EXPECT_EQ(late_sink.finish_status()->code(), absl::StatusCode::kDeadlineExceeded);
  late->OnRpcDone();
  ASSERT_TRUE(summaries_.WaitFor(1, kWait));
  EXPECT_EQ(summaries_.summaries()[0].stage, EndStage::kQueued);
  EXPECT_EQ(summaries_.summaries()[0].cause, EndCause::kDeadline);
  ASSERT_TRUE(model_.stats().WaitForReleased(1, kWait));
  EXPECT_EQ(model_.stats().started(), 1);
}

TEST_F(CallTest, DeadlineDuringGenerationEndsTheStream) {
  FakeStreamSink sink(/*auto_complete=*/true);
  CallOptions options = Options();
  options.deadline = absl::Now() + absl::Milliseconds(50);
  auto call = Stream(Synthetic({{"tokens", IntParam(100000)}, {"token_cost_us", IntParam(1000)}}),
                     &sink, options);
  ASSERT_TRUE(sink.WaitForFinish(kWait));
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(model_.stats().WaitForReleased(1, kWait));
  EXPECT_LT(model_.stats().chunks(), 1000);
  // A deadline is a time, not an event: it may pass between the worker's
  // check and the model's next step, which then sees its token cancelled.
  EXPECT_LE(model_.stats().steps_after_cancel(), 1);
}

TEST_F(CallTest, ShutdownFinishesWithUnavailable) {
  FakeStreamSink sink(/*auto_complete=*/true);
  auto call = Stream(
      Synthetic({{"tokens", IntParam(3)}, {"token_interval_us", IntParam(3'600'000'000)}}), &sink);
  ASSERT_TRUE(sink.WaitForWrites(1, kWait));
  executor_->CancelAll(EndCause::kShutdown);
  ASSERT_TRUE(sink.WaitForFinish(kWait));
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kUnavailable);
  call->OnRpcDone();
  EXPECT_EQ(OnlySummary().cause, EndCause::kShutdown);
}

TEST_F(CallTest, CancelAfterFinishChangesNothing) {
  FakeStreamSink sink(/*auto_complete=*/true);
  auto call = Stream(Synthetic({{"tokens", IntParam(2)}}), &sink);
  ASSERT_TRUE(sink.WaitForFinish(kWait));
  call->Cancel(EndCause::kClientCancelled);
  call->OnRpcDone();
  EXPECT_EQ(OnlySummary().cause, EndCause::kCompleted);
  EXPECT_EQ(sink.finishes(), 1);
}

TEST_F(CallTest, UnaryGathersTheWholeOutput) {
  FakeUnarySink sink;
  auto call = Unary(Synthetic({{"tokens", IntParam(3)}}), &sink, Options());
  ASSERT_TRUE(sink.WaitForFinish(kWait));
  ASSERT_TRUE(sink.finish_status()->ok());
  EXPECT_EQ(sink.response()->output(), "t0 t1 t2 ");
  EXPECT_EQ(sink.response()->finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(sink.response()->usage().output_chunks(), 3u);
  EXPECT_EQ(sink.response()->request_id(), "req-1");
}

TEST_F(CallTest, UnaryOutputLimitIsResourceExhausted) {
  FakeUnarySink sink;
  CallOptions options = Options();
  options.max_unary_output_bytes = 100;
  auto call =
      Unary(Synthetic({{"tokens", IntParam(10)}, {"chunk_bytes", IntParam(20)}}), &sink, options);
  ASSERT_TRUE(sink.WaitForFinish(kWait));
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(sink.finish_status()->message(), HasSubstr("use PredictStream"));
  ASSERT_TRUE(model_.stats().WaitForReleased(1, kWait));
  EXPECT_LE(model_.stats().chunks(), 6);
}

TEST_F(CallTest, UnaryCancelStopsTheModel) {
  FakeUnarySink sink;
  auto call = Unary(Synthetic({{"tokens", IntParam(1000000)}, {"token_cost_us", IntParam(1000)}}),
                    &sink, Options());
  ASSERT_TRUE(model_.stats().WaitForStarted(1, kWait));
  call->Cancel(EndCause::kClientCancelled);
  EXPECT_EQ(sink.finish_status()->code(), absl::StatusCode::kCancelled);
  ASSERT_TRUE(model_.stats().WaitForReleased(1, kWait));
  EXPECT_EQ(model_.stats().steps_after_cancel(), 0);
  EXPECT_LE(model_.stats().chunks_after_cancel(), 1);
}

}  // namespace
}  // namespace sluice
