#include "handlers/call.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "handlers/executor.h"

namespace sluice {
namespace {

// A turn gives one call the worker for at most this many steps or this long,
// whichever comes first, so that active calls share workers fairly.
constexpr int kMaxStepsPerTurn = 64;
constexpr absl::Duration kTurnSlice = absl::Milliseconds(2);

std::string DescribeException(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

}  // namespace

v1::FinishReason ToProtoFinishReason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

Call::Call(Method method, CallOptions options, std::unique_ptr<PreparedCall> prepared,
           Executor* executor, Timers* timers, ModelStats* stats, EndedCallback on_ended)
    : method_(method),
      options_(std::move(options)),
      timers_(timers),
      executor_(executor),
      stats_(stats),
      on_ended_(std::move(on_ended)),
      cancel_(options_.deadline),
      prepared_(std::move(prepared)),
      admitted_at_(absl::Now()) {}

Call::~Call() { DCHECK(generator_ == nullptr) << "a call was destroyed holding its generator"; }

absl::StatusOr<std::unique_ptr<EncodedGenerator>> Call::GuardedStart() {
  try {
    return prepared_->Start(cancel_.token());
  } catch (...) {
    return absl::InternalError(absl::StrCat("model ", options_.model, " threw from Predict: ",
                                            DescribeException(std::current_exception())));
  }
}

Step<std::string> Call::GuardedNext() {
  try {
    return generator_->Next();
  } catch (...) {
    return Step<std::string>::Error(absl::InternalError(
        absl::StrCat("model ", options_.model, " threw while generating chunk ", chunks_, ": ",
                     DescribeException(std::current_exception()))));
  }
}

void Call::RunTurn() {
  AfterUnlock after;
  {
    MutexLock lock(&mu_);
    if (phase_ == Phase::kEnded) return;  // cancelled while it waited in the run queue
    if (phase_ != Phase::kPending && phase_ != Phase::kRunnable) {
      LOG(DFATAL) << "RunTurn on a call in phase " << static_cast<int>(phase_);
      return;
    }
    // A call whose caller left, or whose deadline passed, while it waited for
    // its turn ends here; if it never started, the model never sees it.
    if (ShouldStopLocked(after)) {
      if (phase_ != Phase::kEnded) EndLocked(stage_, after);
    } else {
      if (phase_ == Phase::kPending) {
        started_at_ = absl::Now();
        stage_ = EndStage::kRunning;
      }
      phase_ = Phase::kRunning;
    }
  }
  if (!after.leave_executor) {
    const absl::Time slice_end = absl::Now() + kTurnSlice;
    int steps = 0;
    bool turn_over = false;
    while (!turn_over) {
      // Outside the lock: this worker owns prepared_ and generator_ while the
      // phase is kRunning (a concurrent Cancel only flags the call).
      std::optional<Step<std::string>> step;
      if (generator_ == nullptr) {
        absl::StatusOr<std::unique_ptr<EncodedGenerator>> started = GuardedStart();
        if (started.ok()) {
          generator_ = *std::move(started);
        } else {
          step = Step<std::string>::Error(started.status());
        }
      } else {
        step = GuardedNext();
      }

      {
        MutexLock lock(&mu_);
        turn_over = TakeStepLocked(step, slice_end, steps, after);
      }
      // A write this step made due starts now, not at the end of the turn.
      if (after.write != nullptr) StartWriteUnlocked(*std::exchange(after.write, nullptr));
    }
  }
  Apply(after);
}

bool Call::TakeStepLocked(std::optional<Step<std::string>>& step, absl::Time slice_end, int& steps,
                          AfterUnlock& after) {
  if (ShouldStopLocked(after)) {
    // The step in flight is discarded; no further step is started.
    if (step.has_value() && step->kind() == Step<std::string>::Kind::kChunk) {
      RecordChunkLocked(/*after_cancel=*/true);
    }
    EndLocked(EndStage::kRunning, after);
    return true;
  }
  if (!step.has_value()) return false;  // just started: go on to the first chunk
  bool turn_over = false;
  switch (step->kind()) {
    case Step<std::string>::Kind::kChunk: {
      RecordChunkLocked(/*after_cancel=*/false);
      absl::StatusOr<bool> more = EmitLocked(std::move(step->chunk()), after);
      if (!more.ok()) {
        FailLocked(more.status(), after);
        turn_over = true;
      } else if (!*more) {
        phase_ = Phase::kBlocked;
        MaybeArmStallTimerLocked(after);
        turn_over = true;
      } else if (++steps >= kMaxStepsPerTurn || absl::Now() >= slice_end) {
        phase_ = Phase::kRunnable;
        after.schedule = true;
        turn_over = true;
      }
      break;
    }
    case Step<std::string>::Kind::kDone:
      cause_ = EndCause::kCompleted;
      CompleteLocked(step->finish_reason(), after);
      EndLocked(EndStage::kRunning, after);
      turn_over = true;
      break;
    case Step<std::string>::Kind::kWait:
      if (step->wait_until() <= absl::Now() && ++steps < kMaxStepsPerTurn) break;
      phase_ = Phase::kSleeping;
      after.wake_at = step->wait_until();
      turn_over = true;
      break;
    case Step<std::string>::Kind::kError:
      FailLocked(step->status(), after);
      turn_over = true;
      break;
  }
  return turn_over;
}

bool Call::ShouldStopLocked(AfterUnlock& after) {
  if (cancel_requested_) return true;
  if (options_.deadline != absl::InfiniteFuture() && absl::Now() >= options_.deadline) {
    RequestCancelLocked(EndCause::kDeadline, after);
    return true;
  }
  if (!finish_called_ && sink()->IsCancelled()) {
    // gRPC knows the call is cancelled before OnCancel has reached us.
    RequestCancelLocked(PeerCancelCause(), after);
    return true;
  }
  return false;
}

EndCause Call::PeerCancelCause() const {
  if (options_.deadline != absl::InfiniteFuture() &&
      absl::Now() + kDeadlineSlack >= options_.deadline) {
    return EndCause::kDeadline;
  }
  return EndCause::kClientCancelled;
}

void Call::CancelByPeer() { Cancel(PeerCancelCause()); }

void Call::Cancel(EndCause cause) {
  AfterUnlock after;
  {
    MutexLock lock(&mu_);
    RequestCancelLocked(cause, after);
  }
  Apply(after);
}

void Call::RequestCancelLocked(EndCause cause, AfterUnlock& after) {
  if (cancel_requested_) return;
  // A call that already finished its RPC on its own has nothing to cancel.
  if (phase_ == Phase::kEnded && finish_called_) return;
  cancel_requested_ = true;
  if (!cause_.has_value() || *cause_ == EndCause::kCompleted) cause_ = cause;
  cancelled_at_ = absl::Now();
  cancel_.Cancel();
  FinishWithErrorLocked(StatusForCancel(cause), /*flush=*/false, after);
  switch (phase_) {
    case Phase::kPending:
      EndLocked(EndStage::kQueued, after);
      break;
    case Phase::kRunnable:
    case Phase::kBlocked:
    case Phase::kSleeping:
      EndLocked(EndStage::kRunning, after);
      break;
    case Phase::kRunning:  // the worker ends it as soon as its step returns
    case Phase::kEnded:
      break;
  }
}

absl::Status Call::StatusForCancel(EndCause cause) const {
  switch (cause) {
    case EndCause::kDeadline:
      return absl::DeadlineExceededError(
          absl::StrCat("deadline exceeded after ", chunks_, " chunks from model ", options_.model));
    case EndCause::kStalled:
      return absl::CancelledError(absl::StrCat("the client did not read for ",
                                               absl::FormatDuration(options_.write_stall_timeout),
                                               " (write_stall_timeout); stream cancelled"));
    case EndCause::kShutdown:
      return absl::UnavailableError("the server is shutting down; retry on another replica");
    case EndCause::kDisconnected:
      return absl::CancelledError("the client's connection closed");
    default:
      break;
  }
  return absl::CancelledError("the call was cancelled by the client");
}

void Call::FailLocked(const absl::Status& status, AfterUnlock& after) {
  cause_ = EndCause::kError;
  LOG(ERROR) << "model " << options_.model << " failed"
             << (options_.request_id.empty() ? "" : " on request " + options_.request_id) << ": "
             << status;
  FinishWithErrorLocked(status, /*flush=*/true, after);
  EndLocked(EndStage::kRunning, after);
}

void Call::EndLocked(EndStage stage, AfterUnlock& after) {
  phase_ = Phase::kEnded;
  stage_ = stage;
  ended_at_ = absl::Now();
  after.release = std::move(generator_);
  after.discard = std::move(prepared_);
  after.leave_executor = true;
  MaybeReportLocked(after);
}

void Call::RecordChunkLocked(bool after_cancel) {
  stats_->RecordChunk(after_cancel);
  if (after_cancel) {
    ++chunks_after_cancel_;
    return;
  }
  const absl::Time now = absl::Now();
  if (chunks_ == 0) {
    stats_->time_to_first_chunk().Observe(now - admitted_at_);
  } else {
    stats_->inter_chunk().Observe(now - last_chunk_at_);
  }
  last_chunk_at_ = now;
  ++chunks_;
}

void Call::OnRpcDone() {
  AfterUnlock after;
  {
    MutexLock lock(&mu_);
    rpc_done_ = true;
    MaybeReportLocked(after);
  }
  Apply(after);
}

void Call::MaybeReportLocked(AfterUnlock& after) {
  if (reported_ || !rpc_done_ || phase_ != Phase::kEnded) return;
  reported_ = true;
  CallSummary summary;
  summary.model = options_.model;
  summary.request_id = options_.request_id;
  summary.peer = options_.peer;
  summary.method = method_;
  summary.cause = cause_.value_or(EndCause::kError);
  summary.stage = stage_;
  summary.status = final_status_;
  summary.chunks = chunks_ + chunks_after_cancel_;
  summary.chunks_after_cancel = chunks_after_cancel_;
  summary.output_bytes = output_bytes_;
  if (started_at_ == absl::InfinitePast()) {
    summary.queue_time = ended_at_ - admitted_at_;
  } else {
    summary.queue_time = started_at_ - admitted_at_;
    summary.run_time = ended_at_ - started_at_;
  }
  summary.cancelled_at = cancelled_at_;
  after.report = std::move(summary);
}

void Call::Apply(AfterUnlock& after) {
  // Release first: freeing the model's resources is the point of stopping.
  after.release.reset();
  after.discard.reset();
  if (after.write != nullptr) StartWriteUnlocked(*after.write);
  if (after.try_cancel) {
    // Finish is held back until TryCancel returns, so the RPC (and its
    // context) cannot complete underneath it.
    sink()->TryCancel();
    AfterUnlock pumped;
    {
      MutexLock lock(&mu_);
      hold_finish_ = false;
      PumpLocked(pumped);
    }
    if (pumped.write != nullptr) StartWriteUnlocked(*pumped.write);
    if (pumped.finish.has_value()) after.finish = std::move(pumped.finish);
  }
  if (after.leave_executor) executor_->Leave(this);
  if (after.schedule) executor_->Schedule(shared_from_this());
  if (after.wake_at != absl::InfinitePast()) {
    timers_->RunAt(after.wake_at, [weak = weak_from_this()] {
      if (std::shared_ptr<Call> call = weak.lock()) call->Wake();
    });
  }
  if (after.stall_check_at != absl::InfinitePast()) {
    timers_->RunAt(after.stall_check_at, [weak = weak_from_this()] {
      if (std::shared_ptr<Call> call = weak.lock()) {
        static_cast<StreamCall*>(call.get())->CheckStall();
      }
    });
  }
  if (after.report.has_value() && on_ended_) on_ended_(*after.report);
  // Last: once finished, the RPC may complete and its sink go away.
  if (after.finish.has_value()) FinishUnlocked(*after.finish);
}

void Call::Wake() {
  AfterUnlock after;
  {
    MutexLock lock(&mu_);
    if (phase_ != Phase::kSleeping) return;
    phase_ = Phase::kRunnable;
    after.schedule = true;
  }
  Apply(after);
}

// --- StreamCall -------------------------------------------------------------

std::shared_ptr<StreamCall> StreamCall::Create(CallOptions options,
                                               std::unique_ptr<PreparedCall> prepared,
                                               Executor* executor, Timers* timers,
                                               ModelStats* stats, StreamSink* sink,
                                               EndedCallback on_ended) {
  options.stream_buffer_chunks = std::max<size_t>(1, options.stream_buffer_chunks);
  options.stream_buffer_bytes = std::max<size_t>(1, options.stream_buffer_bytes);
  return std::shared_ptr<StreamCall>(new StreamCall(
      std::move(options), std::move(prepared), executor, timers, stats, sink, std::move(on_ended)));
}

StreamCall::StreamCall(CallOptions options, std::unique_ptr<PreparedCall> prepared,
                       Executor* executor, Timers* timers, ModelStats* stats, StreamSink* sink,
                       EndedCallback on_ended)
    : Call(Method::kPredictStream, std::move(options), std::move(prepared), executor, timers, stats,
           std::move(on_ended)),
      sink_(sink) {}

absl::StatusOr<bool> StreamCall::EmitLocked(std::string bytes, AfterUnlock& after) {
  output_bytes_ += bytes.size();
  v1::PredictChunk& chunk = pending_.emplace_back();
  chunk.set_index(next_index_++);
  *chunk.mutable_output() = std::move(bytes);
  PumpLocked(after);
  pending_bytes_ += pending_.back().output().size();
  return !BufferFullLocked();
}

void StreamCall::CompleteLocked(FinishReason reason, AfterUnlock& after) {
  v1::PredictChunk& last = pending_.emplace_back();
  last.set_index(next_index_);
  last.set_finish_reason(ToProtoFinishReason(reason));
  last.set_request_id(options_.request_id);
  v1::Usage* usage = last.mutable_usage();
  usage->set_input_bytes(options_.input_bytes);
  usage->set_output_chunks(next_index_);
  usage->set_output_bytes(output_bytes_);
  finish_status_ = absl::OkStatus();
  PumpLocked(after);
  MaybeArmStallTimerLocked(after);
}

void StreamCall::FinishWithErrorLocked(const absl::Status& status, bool flush, AfterUnlock& after) {
  if (finish_called_) return;
  if (!flush) {
    // Drop everything not already handed to gRPC.
    const size_t keep = write_in_flight_ ? 1 : 0;
    while (pending_.size() > keep) {
      pending_bytes_ -= pending_.back().output().size();
      pending_.pop_back();
    }
  }
  finish_status_ = status;
  PumpLocked(after);
  MaybeArmStallTimerLocked(after);
}

void StreamCall::PumpLocked(AfterUnlock& after) {
  if (finish_called_ || write_in_flight_) return;
  if (!pending_.empty()) {
    write_in_flight_ = true;
    write_started_at_ = absl::Now();
    after.write = &pending_.front();
    return;
  }
  if (finish_status_.has_value() && !hold_finish_) {
    finish_called_ = true;
    final_status_ = *finish_status_;
    after.finish = final_status_;
  }
}

void StreamCall::OnWriteDone(bool ok) {
  AfterUnlock after;
  {
    MutexLock lock(&mu_);
    write_in_flight_ = false;
    if (ok) {
      PopFrontLocked();
    } else {
      // The stream is broken: the client cancelled, went away, or the call
      // was cancelled on our side. Nothing more can be written.
      pending_.clear();
      pending_bytes_ = 0;
      RequestCancelLocked(PeerCancelCause(), after);
    }
    PumpLocked(after);
    if (phase_ == Phase::kBlocked && BufferDrainedLocked()) {
      phase_ = Phase::kRunnable;
      after.schedule = true;
    }
  }
  Apply(after);
}

bool StreamCall::BufferFullLocked() const {
  return pending_.size() >= options_.stream_buffer_chunks ||
         pending_bytes_ >= options_.stream_buffer_bytes;
}

bool StreamCall::BufferDrainedLocked() const {
  return pending_.size() <= options_.stream_buffer_chunks / 2 &&
         pending_bytes_ <= options_.stream_buffer_bytes / 2;
}

void StreamCall::PopFrontLocked() {
  pending_bytes_ -= pending_.front().output().size();
  pending_.pop_front();
}

bool StreamCall::WaitingOnClientLocked() const {
  return write_in_flight_ && (phase_ == Phase::kBlocked || phase_ == Phase::kEnded);
}

void StreamCall::MaybeArmStallTimerLocked(AfterUnlock& after) {
  if (stall_timer_armed_ || !WaitingOnClientLocked()) return;
  stall_timer_armed_ = true;
  after.stall_check_at = write_started_at_ + options_.write_stall_timeout;
}

void StreamCall::CheckStall() {
  AfterUnlock after;
  {
    MutexLock lock(&mu_);
    stall_timer_armed_ = false;
    if (!WaitingOnClientLocked() || hold_finish_) return;
    const absl::Time stalled_at = write_started_at_ + options_.write_stall_timeout;
    if (absl::Now() < stalled_at) {
      // Writes completed since the timer was set; check the current one later.
      stall_timer_armed_ = true;
      after.stall_check_at = stalled_at;
    } else {
      RequestCancelLocked(EndCause::kStalled, after);  // no-op if already cancelled
      // The outstanding write will not complete on its own: reset the stream.
      hold_finish_ = true;
      after.try_cancel = true;
    }
  }
  Apply(after);
}

// --- UnaryCall --------------------------------------------------------------

std::shared_ptr<UnaryCall> UnaryCall::Create(CallOptions options,
                                             std::unique_ptr<PreparedCall> prepared,
                                             Executor* executor, Timers* timers, ModelStats* stats,
                                             UnarySink* sink, EndedCallback on_ended) {
  return std::shared_ptr<UnaryCall>(new UnaryCall(std::move(options), std::move(prepared), executor,
                                                  timers, stats, sink, std::move(on_ended)));
}

UnaryCall::UnaryCall(CallOptions options, std::unique_ptr<PreparedCall> prepared,
                     Executor* executor, Timers* timers, ModelStats* stats, UnarySink* sink,
                     EndedCallback on_ended)
    : Call(Method::kPredict, std::move(options), std::move(prepared), executor, timers, stats,
           std::move(on_ended)),
      sink_(sink) {}

absl::StatusOr<bool> UnaryCall::EmitLocked(std::string bytes, AfterUnlock& after) {
  if (response_.output().size() + bytes.size() > options_.max_unary_output_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the output of model ", options_.model, " exceeded ", options_.max_unary_output_bytes,
        " bytes, the limit for Predict; use PredictStream for long outputs"));
  }
  output_bytes_ += bytes.size();
  response_.mutable_output()->append(bytes);
  return true;
}

void UnaryCall::CompleteLocked(FinishReason reason, AfterUnlock& after) {
  response_.set_model(options_.model);
  response_.set_finish_reason(ToProtoFinishReason(reason));
  response_.set_request_id(options_.request_id);
  v1::Usage* usage = response_.mutable_usage();
  usage->set_input_bytes(options_.input_bytes);
  usage->set_output_chunks(chunks_locked());
  usage->set_output_bytes(output_bytes_);
  finish_called_ = true;
  final_status_ = absl::OkStatus();
  after.finish = final_status_;
}

void UnaryCall::FinishWithErrorLocked(const absl::Status& status, bool flush, AfterUnlock& after) {
  if (finish_called_) return;
  finish_called_ = true;
  final_status_ = status;
  after.finish = final_status_;
}

}  // namespace sluice
