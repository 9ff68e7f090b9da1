#include "handlers/call.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "handlers/write_starter.h"

namespace sluice {

v1::FinishReason ToProtoFinishReason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

Call::Call(Method method, CallOptions options, Timers* timers, ModelStats* stats,
           EndedCallback on_ended)
    : method_(method),
      options_(std::move(options)),
      timers_(timers),
      stats_(stats),
      on_ended_(std::move(on_ended)),
      cancel_(options_.deadline),
      admitted_at_(absl::Now()) {}

Call::~Call() = default;

void Call::Attach(CallDriver* driver, std::shared_ptr<CallDriver::Task> task) {
  DCHECK(driver_ == nullptr) << "a call was attached to two drivers";
  driver_ = driver;
  task_ = std::move(task);
}

// --- Driver side -------------------------------------------------------------

std::optional<EndCause> Call::StopReason() const {
  MutexLock lock(&mu_);
  return StopReasonLocked();
}

std::optional<EndCause> Call::StopReasonLocked() const {
  if (cause_.has_value()) return *cause_;
  if (options_.deadline != absl::InfiniteFuture() && absl::Now() >= options_.deadline) {
    return EndCause::kDeadline;
  }
  // gRPC may know the call is cancelled before OnCancel has reached us.
  if (!finish_called_ && sink()->IsCancelled()) return PeerCancelCause();
  return std::nullopt;
}

void Call::Started() {
  MutexLock lock(&mu_);
  if (started_at_ == absl::InfinitePast()) started_at_ = absl::Now();
}

Call::EmitResult Call::Emit(std::string bytes) {
  AfterUnlock after;
  after.on_driver_thread = true;
  EmitResult result = EmitResult::kMore;
  {
    MutexLock lock(&mu_);
    if (std::optional<EndCause> why = StopReasonLocked()) {
      // Made in vain: the call is no longer wanted. The caller is the driver
      // and stops on kStopped; it needs no notice.
      RecordChunkLocked(/*after_cancel=*/true);
      RequestCancelLocked(*why, after);
      after.stop_driver = false;
      result = EmitResult::kStopped;
    } else {
      RecordChunkLocked(/*after_cancel=*/false);
      const size_t size = bytes.size();
      absl::StatusOr<bool> more = AcceptLocked(std::move(bytes), after);
      if (more.ok()) output_bytes_ += size;
      if (!more.ok()) {
        FailLocked(more.status(), after);
        result = EmitResult::kStopped;
      } else if (!*more) {
        driver_waiting_ = true;
        ArmStallCheckLocked(after);
        result = EmitResult::kFull;
      }
    }
  }
  Apply(after);
  return result;
}

void Call::Complete(FinishReason reason, const TokenUsage& usage) {
  AfterUnlock after;
  after.on_driver_thread = true;
  {
    MutexLock lock(&mu_);
    // A deadline is a time: if it passed (or gRPC knows of a cancel) before
    // the model finished, that came first.
    if (std::optional<EndCause> why = StopReasonLocked()) {
      RequestCancelLocked(*why, after);
      after.stop_driver = false;  // the driver is the caller, and done
    } else if (DecideEndingLocked(EndCause::kCompleted, absl::OkStatus())) {
      FinalMessageLocked(reason, usage);
      PumpLocked(after);
      ArmStallCheckLocked(after);
    }
  }
  Apply(after);
}

void Call::Fail(const absl::Status& status) {
  AfterUnlock after;
  after.on_driver_thread = true;
  {
    MutexLock lock(&mu_);
    FailLocked(status, after);
  }
  Apply(after);
}

void Call::FailLocked(const absl::Status& status, AfterUnlock& after) {
  // A model that fails once its call is no longer wanted (typically because
  // it noticed the cancelled token mid-step) was stopped, not broken.
  if (std::optional<EndCause> why = StopReasonLocked()) {
    RequestCancelLocked(*why, after);
    after.stop_driver = false;  // the driver is the caller, and done
    return;
  }
  if (!DecideEndingLocked(EndCause::kError, status)) return;
  LOG(ERROR) << "model " << options_.model << " failed"
             << (options_.request_id.empty() ? "" : " on request " + options_.request_id) << ": "
             << status;
  cancel_.Cancel();
  PumpLocked(after);
  ArmStallCheckLocked(after);
}

void Call::Released() {
  AfterUnlock after;
  {
    MutexLock lock(&mu_);
    DCHECK(!released_) << "a call's work was released twice";
    released_ = true;
    released_at_ = absl::Now();
    MaybeReportLocked(after);
  }
  Apply(after);
}

// --- RPC side ----------------------------------------------------------------

void Call::Cancel(EndCause cause) {
  AfterUnlock after;
  {
    MutexLock lock(&mu_);
    RequestCancelLocked(cause, after);
  }
  Apply(after);
}

void Call::CancelByPeer() { Cancel(PeerCancelCause()); }

void Call::OnRpcDone() {
  AfterUnlock after;
  {
    MutexLock lock(&mu_);
    rpc_done_ = true;
    MaybeReportLocked(after);
  }
  Apply(after);
}

EndCause Call::PeerCancelCause() const {
  if (options_.deadline != absl::InfiniteFuture() &&
      absl::Now() + kDeadlineSlack >= options_.deadline) {
    return EndCause::kDeadline;
  }
  return EndCause::kClientCancelled;
}

// --- The ending --------------------------------------------------------------

bool Call::DecideEndingLocked(EndCause cause, absl::Status status) {
  if (cause_.has_value() || finish_called_) return false;
  cause_ = cause;
  finish_status_ = std::move(status);
  return true;
}

void Call::RequestCancelLocked(EndCause cause, AfterUnlock& after) {
  if (!DecideEndingLocked(cause, StatusForCancel(cause))) return;
  cancelled_at_ = absl::Now();
  cancel_.Cancel();
  DropBufferedLocked(after);
  PumpLocked(after);
  ArmStallCheckLocked(after);
  after.stop_driver = true;
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

void Call::ResumeIfReadyLocked(AfterUnlock& after) {
  if (!driver_waiting_ || cause_.has_value() || !MayResumeLocked()) return;
  driver_waiting_ = false;
  after.resume_driver = true;
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

void Call::MaybeReportLocked(AfterUnlock& after) {
  if (reported_ || !rpc_done_ || !released_) return;
  reported_ = true;
  CallSummary summary;
  summary.model = options_.model;
  summary.request_id = options_.request_id;
  summary.peer = options_.peer;
  summary.method = method_;
  summary.cause = cause_.value_or(EndCause::kError);
  summary.status = finish_status_.value_or(absl::InternalError("the call ended undecided"));
  summary.chunks = chunks_ + chunks_after_cancel_;
  summary.chunks_after_cancel = chunks_after_cancel_;
  summary.output_bytes = output_bytes_;
  if (started_at_ == absl::InfinitePast()) {
    summary.stage = EndStage::kQueued;
    summary.queue_time = released_at_ - admitted_at_;
  } else {
    summary.stage = EndStage::kRunning;
    summary.queue_time = started_at_ - admitted_at_;
    summary.run_time = released_at_ - started_at_;
  }
  summary.cancelled_at = cancelled_at_;
  after.report = std::move(summary);
}

void Call::Apply(AfterUnlock& after) {
  // The driver first: freeing the model's resources is the point of stopping.
  if (after.stop_driver && driver_ != nullptr) driver_->StopTask(*task_);
  if (after.budget_release > 0) options_.output_budget->Remove(after.budget_release);
  if (after.write != nullptr) {
    WriteStarter* starter =
        after.on_driver_thread && driver_ != nullptr ? driver_->write_starter() : nullptr;
    if (starter != nullptr) {
      // The message stays the front of the buffer, and the write marked
      // outstanding, until the write completes: nothing frees it, writes
      // another or finishes the RPC before the starter has started it.
      starter->Post([self = shared_from_this(), write = after.write,
                     hint = after.write_buffer_hint] { self->StartWriteUnlocked(*write, hint); });
    } else {
      StartWriteUnlocked(*after.write, after.write_buffer_hint);
    }
  }
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
    if (pumped.write != nullptr) StartWriteUnlocked(*pumped.write, pumped.write_buffer_hint);
    if (pumped.finish.has_value()) after.finish = std::move(pumped.finish);
  }
  if (after.resume_driver && driver_ != nullptr) driver_->ResumeTask(*task_);
  if (after.wait_for_budget) WaitForBudgetUnlocked();
  if (after.stall_check_at != absl::InfinitePast()) {
    timers_->RunAt(after.stall_check_at, [weak = weak_from_this()] {
      if (std::shared_ptr<Call> call = weak.lock()) call->CheckStallUnlocked();
    });
  }
  if (after.report.has_value() && on_ended_) on_ended_(*after.report);
  // Last: once finished, the RPC may complete and its sink go away.
  if (after.finish.has_value()) FinishUnlocked(*after.finish);
}

// --- StreamCall ----------------------------------------------------------------

std::shared_ptr<StreamCall> StreamCall::Create(CallOptions options, Timers* timers,
                                               ModelStats* stats, StreamSink* sink,
                                               EndedCallback on_ended) {
  options.stream_buffer_chunks = std::max<size_t>(1, options.stream_buffer_chunks);
  options.stream_buffer_bytes = std::max<size_t>(1, options.stream_buffer_bytes);
  return std::shared_ptr<StreamCall>(
      new StreamCall(std::move(options), timers, stats, sink, std::move(on_ended)));
}

StreamCall::StreamCall(CallOptions options, Timers* timers, ModelStats* stats, StreamSink* sink,
                       EndedCallback on_ended)
    : Call(Method::kPredictStream, std::move(options), timers, stats, std::move(on_ended)),
      sink_(sink) {}

StreamCall::~StreamCall() {
  // A finished stream has written or dropped everything; this only guards
  // the budget against a stream torn down some other way.
  MutexLock lock(&mu_);
  if (pending_bytes_ > 0 && options_.output_budget != nullptr) {
    options_.output_budget->Remove(pending_bytes_);
  }
}

absl::StatusOr<bool> StreamCall::AcceptLocked(std::string bytes, AfterUnlock& after) {
  v1::PredictChunk& chunk = pending_.emplace_back();
  chunk.set_index(chunks_ - 1);
  const size_t size = bytes.size();
  *chunk.mutable_output() = std::move(bytes);
  pending_bytes_ += size;
  if (options_.output_budget != nullptr && !options_.output_budget->Add(size)) {
    budget_paused_ = true;
    after.wait_for_budget = true;
  }
  PumpLocked(after);
  return !BufferFullLocked() && !budget_paused_;
}

void StreamCall::FinalMessageLocked(FinishReason reason, const TokenUsage& usage) {
  v1::PredictChunk& last = pending_.emplace_back();
  last.set_index(chunks_);
  last.set_finish_reason(ToProtoFinishReason(reason));
  last.set_request_id(options_.request_id);
  v1::Usage* u = last.mutable_usage();
  u->set_input_bytes(options_.input_bytes);
  u->set_output_chunks(chunks_);
  u->set_output_bytes(output_bytes_);
  u->set_input_tokens(usage.input_tokens);
  u->set_output_tokens(usage.output_tokens);
}

void StreamCall::DropBufferedLocked(AfterUnlock& after) {
  // Everything not already handed to gRPC.
  const size_t keep = write_in_flight_ ? 1 : 0;
  while (pending_.size() > keep) PopBackLocked(after);
}

void StreamCall::PumpLocked(AfterUnlock& after) {
  if (finish_called_ || write_in_flight_) return;
  if (!pending_.empty()) {
    write_in_flight_ = true;
    write_starting_ = true;
    write_started_at_ = absl::Now();
    after.write = &pending_.front();
    // Whatever waits behind it is written from its OnWriteDone: the
    // transport may hold this one back until the last of them.
    after.write_buffer_hint = pending_.size() > 1;
    return;
  }
  if (finish_status_.has_value() && !hold_finish_) {
    finish_called_ = true;
    after.finish = *finish_status_;
  }
}

void StreamCall::StartWriteUnlocked(const v1::PredictChunk& first, bool first_buffer_hint) {
  const v1::PredictChunk* chunk = &first;
  bool buffer_hint = first_buffer_hint;
  while (chunk != nullptr) {
    sink_->StartWrite(chunk, buffer_hint);
    AfterUnlock after;
    {
      MutexLock lock(&mu_);
      write_starting_ = false;
      if (!early_write_done_.has_value()) return;  // OnWriteDone will come
      WriteDoneLocked(*std::exchange(early_write_done_, std::nullopt), after);
    }
    // The next write in a loop rather than by recursion: a client that keeps
    // up could otherwise nest one frame per buffered chunk.
    chunk = std::exchange(after.write, nullptr);
    buffer_hint = after.write_buffer_hint;
    Apply(after);
  }
}

void StreamCall::OnWriteDone(bool ok) {
  AfterUnlock after;
  {
    MutexLock lock(&mu_);
    if (write_starting_) {
      early_write_done_ = ok;  // the thread in StartWrite finishes it on return
      return;
    }
    WriteDoneLocked(ok, after);
  }
  Apply(after);
}

void StreamCall::WriteDoneLocked(bool ok, AfterUnlock& after) {
  write_in_flight_ = false;
  if (ok) {
    PopFrontLocked(after);
  } else {
    // The stream is broken: the client cancelled, went away, or the call
    // was cancelled on our side. Nothing more can be written.
    while (!pending_.empty()) PopBackLocked(after);
    RequestCancelLocked(PeerCancelCause(), after);
  }
  PumpLocked(after);
  ResumeIfReadyLocked(after);
  ArmStallCheckLocked(after);
}

void StreamCall::OnBudgetAvailable() {
  AfterUnlock after;
  {
    MutexLock lock(&mu_);
    if (!budget_paused_) return;
    budget_paused_ = false;
    ResumeIfReadyLocked(after);
  }
  Apply(after);
}

void StreamCall::WaitForBudgetUnlocked() {
  std::shared_ptr<StreamCall> self = std::static_pointer_cast<StreamCall>(shared_from_this());
  if (!options_.output_budget->Wait(std::weak_ptr<BudgetWaiter>(self))) OnBudgetAvailable();
}

bool StreamCall::MayResumeLocked() const { return BufferDrainedLocked() && !budget_paused_; }

bool StreamCall::BufferFullLocked() const {
  return pending_.size() >= options_.stream_buffer_chunks ||
         pending_bytes_ >= options_.stream_buffer_bytes;
}

bool StreamCall::BufferDrainedLocked() const {
  return pending_.size() <= options_.stream_buffer_chunks / 2 &&
         pending_bytes_ <= options_.stream_buffer_bytes / 2;
}

void StreamCall::PopFrontLocked(AfterUnlock& after) {
  const size_t size = pending_.front().output().size();
  pending_bytes_ -= size;
  if (options_.output_budget != nullptr) after.budget_release += size;
  pending_.pop_front();
}

void StreamCall::PopBackLocked(AfterUnlock& after) {
  const size_t size = pending_.back().output().size();
  pending_bytes_ -= size;
  if (options_.output_budget != nullptr) after.budget_release += size;
  pending_.pop_back();
}

bool StreamCall::WaitingOnClientLocked() const {
  return write_in_flight_ && (driver_waiting_ || finish_status_.has_value());
}

void StreamCall::ArmStallCheckLocked(AfterUnlock& after) {
  if (stall_timer_armed_ || finish_called_ || !WaitingOnClientLocked()) return;
  stall_timer_armed_ = true;
  after.stall_check_at = write_started_at_ + options_.write_stall_timeout;
}

void StreamCall::CheckStall() {
  AfterUnlock after;
  {
    MutexLock lock(&mu_);
    stall_timer_armed_ = false;
    if (!WaitingOnClientLocked() || hold_finish_ || finish_called_) return;
    const absl::Time stalled_at = write_started_at_ + options_.write_stall_timeout;
    if (absl::Now() < stalled_at) {
      // Writes completed since the timer was set; check the current one later.
      stall_timer_armed_ = true;
      after.stall_check_at = stalled_at;
    } else {
      if (cause_.has_value()) {
        // The ending was decided, but its delivery is stuck behind a client
        // that does not read: the stall wins, and the stream is reset.
        cause_ = EndCause::kStalled;
        finish_status_ = StatusForCancel(EndCause::kStalled);
        DropBufferedLocked(after);
      } else {
        RequestCancelLocked(EndCause::kStalled, after);
      }
      // The outstanding write will not complete on its own: reset the stream.
      hold_finish_ = true;
      after.try_cancel = true;
    }
  }
  Apply(after);
}

v1::PredictChunk& StreamCall::MessageQueue::emplace_back() {
  if (!has_front_) {
    has_front_ = true;
    return front_;
  }
  if (!rest_.has_value()) rest_.emplace();
  return rest_->emplace_back();
}

void StreamCall::MessageQueue::pop_front() {
  if (rest_.has_value() && !rest_->empty()) {
    front_ = std::move(rest_->front());  // the front is no longer being written
    rest_->pop_front();
  } else {
    front_.Clear();
    has_front_ = false;
  }
}

void StreamCall::MessageQueue::pop_back() {
  if (rest_.has_value() && !rest_->empty()) {
    rest_->pop_back();
  } else {
    front_.Clear();
    has_front_ = false;
  }
}

// --- UnaryCall -----------------------------------------------------------------

std::shared_ptr<UnaryCall> UnaryCall::Create(CallOptions options, Timers* timers, ModelStats* stats,
                                             UnarySink* sink, EndedCallback on_ended) {
  return std::shared_ptr<UnaryCall>(
      new UnaryCall(std::move(options), timers, stats, sink, std::move(on_ended)));
}

UnaryCall::UnaryCall(CallOptions options, Timers* timers, ModelStats* stats, UnarySink* sink,
                     EndedCallback on_ended)
    : Call(Method::kPredict, std::move(options), timers, stats, std::move(on_ended)), sink_(sink) {}

absl::StatusOr<bool> UnaryCall::AcceptLocked(std::string bytes, AfterUnlock& after) {
  if (response_.output().size() + bytes.size() > options_.max_unary_output_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the output of model ", options_.model, " exceeded ", options_.max_unary_output_bytes,
        " bytes, the limit for Predict; use PredictStream for long outputs"));
  }
  response_.mutable_output()->append(bytes);
  return true;
}

void UnaryCall::FinalMessageLocked(FinishReason reason, const TokenUsage& usage) {
  response_.set_model(options_.model);
  response_.set_finish_reason(ToProtoFinishReason(reason));
  response_.set_request_id(options_.request_id);
  v1::Usage* u = response_.mutable_usage();
  u->set_input_bytes(options_.input_bytes);
  u->set_output_chunks(chunks_);
  u->set_output_bytes(output_bytes_);
  u->set_input_tokens(usage.input_tokens);
  u->set_output_tokens(usage.output_tokens);
}

void UnaryCall::PumpLocked(AfterUnlock& after) {
  if (finish_called_ || hold_finish_ || !finish_status_.has_value()) return;
  finish_called_ = true;
  after.finish = *finish_status_;
}

}  // namespace sluice
