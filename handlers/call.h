#ifndef SLUICE_HANDLERS_CALL_H_
#define SLUICE_HANDLERS_CALL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "handlers/output_budget.h"
#include "handlers/sinks.h"
#include "handlers/stats.h"
#include "handlers/timer_queue.h"
#include "models/cancellation.h"
#include "models/generator.h"
#include "models/sync.h"

namespace sluice {

class Call;
class WriteStarter;

// CallOptions: what a call needs to know about itself, fixed at admission.
struct CallOptions {
  // The model's registered name (for messages and stats).
  std::string model;
  // The caller's request_id, echoed on the final message.
  std::string request_id;
  // The client's address as gRPC reports it (ServerContext::peer()).
  std::string peer;
  // Bytes of input, for the usage report.
  uint64_t input_bytes = 0;
  // When the call's deadline expires; generation stops then.
  absl::Time deadline = absl::InfiniteFuture();
  // Streams: encoded chunks a call may hold, counting the one being written,
  // and the bytes they may add up to. When either is reached the model is
  // not asked for more until the client has drained half of it.
  size_t stream_buffer_chunks = 64;
  size_t stream_buffer_bytes = 1 << 20;
  // Streams: how long a write may stay outstanding while the call waits on
  // its client (its buffer is full, the output budget is spent, or the
  // stream is ending) before the client counts as stalled and the stream is
  // reset.
  absl::Duration write_stall_timeout = absl::Seconds(10);
  // Streams: the server-wide budget for buffered output, or nullptr for none.
  OutputBudget* output_budget = nullptr;
  // Unary: the largest output a Predict response may carry.
  size_t max_unary_output_bytes = 4 << 20;
};

// CallSummary: how a call ended. Reported exactly once, when its RPC is done
// and its driver has released everything the model held for it.
struct CallSummary {
  std::string model;
  std::string request_id;
  std::string peer;
  Method method = Method::kPredictStream;
  // A cancel that came from the client's side is reported as
  // kClientCancelled; whether its connection was lost (kDisconnected) is for
  // the service to tell.
  EndCause cause = EndCause::kCompleted;
  EndStage stage = EndStage::kQueued;
  absl::Status status;  // what the RPC was finished with
  uint64_t chunks = 0;  // chunks the model produced
  uint64_t chunks_after_cancel = 0;
  uint64_t output_bytes = 0;
  absl::Duration queue_time;  // admission until the model started (or the call ended)
  absl::Duration run_time;    // model start until the model's work was released
  absl::Time cancelled_at = absl::InfinitePast();  // when the server learned of a cancel
};

// CallDriver: whatever runs a call's model work (the Executor, which steps
// one generator per call, or the BatchScheduler, which steps many sequences
// at once), as the call sees it. The call tells its driver two things, never
// with its own lock held; the driver answers through the Call's driver-side
// methods below.
class CallDriver {
 public:
  // Task: the driver's record of one call. The call keeps it for as long as
  // the call lives, so a notice always finds it, even after the driver is
  // done with the call.
  class Task {
   public:
    virtual ~Task() = default;
  };

  virtual ~CallDriver() = default;

  // StopTask: the call is no longer wanted (its ending is decided). The
  // driver releases the model's work for it (see each driver for where and
  // when) and then calls Call::Released. Idempotent.
  virtual void StopTask(Task& task) = 0;
  // ResumeTask: the call can take output again after Emit said kFull.
  virtual void ResumeTask(Task& task) = 0;
  // write_starter: where a stream's writes that the driver's own thread
  // decides (in Emit, Complete or Fail) are started, or nullptr to start
  // them on that thread there and then. A driver whose thread is the model's
  // critical path (the batch loop) hands them to another thread; see
  // handlers/write_starter.h. Fixed for the driver's lifetime.
  virtual WriteStarter* write_starter() { return nullptr; }
};

// Call is one RPC's side of a model call: it delivers the model's output to
// the RPC, is the one place every reason to stop arrives, decides how the
// call ends, and reports it. It does not run the model: its driver does,
// and talks to it through the driver-side methods.
//
// clang-format off
// How a call ends (cause_ and the finish status, decided once, under mu_):
//
//   model finished ──Complete──▶ completed (OK) ─┐
//   model failed ────Fail──────▶ error (INTERNAL)├─▶ flush buffered output ─▶ Finish ─┐
//   any reason to stop ──────────▶ cancel cause ─┴─▶ drop buffered output ─▶ Finish ─┤
//     (client cancel, deadline, disconnect,                                          │
//      stall, shutdown: RequestCancelLocked)     driver released the model's work ──┤
//                                                RPC done (reactor's OnDone) ───────┴─▶ report
// clang-format on
//
// The first decided ending wins, with one exception: a stream whose
// outstanding write does not complete within write_stall_timeout while it
// waits on its client (buffer full, budget spent, or ending) is ended as
// stalled and reset, whatever had been decided, unless the RPC is already
// finished. Finish is called exactly once, never with a write outstanding
// and never before a TryCancel in progress has returned.
//
// Threading: the driver-side methods are called by one thread at a time
// (whichever thread runs the model's work for this call); the RPC-side ones
// from gRPC's threads and timers. Nothing is called back with mu_ held. A
// write the driver's thread decides is started on that thread, or on the
// driver's WriteStarter if it has one (CallDriver::write_starter).
//
// Ownership: shared by the reactor (until its OnDone), the driver (while it
// holds the call's work) and timers (weakly).
class Call : public std::enable_shared_from_this<Call> {
 public:
  using EndedCallback = std::function<void(const CallSummary&)>;

  virtual ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // --- Driver side ---------------------------------------------------------

  // Attach: `driver` runs this call's model work; `task` is its record.
  // Called once, at admission, before any other thread can reach the call.
  void Attach(CallDriver* driver, std::shared_ptr<CallDriver::Task> task);

  // StopReason: why the model's work for this call should stop now, or
  // nullopt if it should go on: the ending is decided, the deadline has
  // passed, or gRPC knows the RPC is cancelled. A pure question; Cancel acts.
  std::optional<EndCause> StopReason() const;

  // Started: the model starts working on this call (it leaves the queue).
  void Started();

  // Emit: delivers one encoded chunk. kMore: go on. kFull: the client (or
  // the server-wide output budget) must catch up first; the driver waits
  // for ResumeTask. kStopped: the call is no longer wanted (the chunk was
  // made in vain); the driver stops and releases.
  enum class EmitResult { kMore, kFull, kStopped };
  EmitResult Emit(std::string bytes);

  // Complete: the model finished; finish the RPC with success once the
  // buffered output is delivered. If the call had stopped being wanted first
  // (see StopReason: e.g. its deadline passed during the last step), it
  // ends for that reason instead; so does Fail.
  void Complete(FinishReason reason, const TokenUsage& usage = TokenUsage());

  // Fail: the model failed with `status`: deliver the output already
  // produced, then finish the RPC with `status`.
  void Fail(const absl::Status& status);

  // Released: the driver released everything the model held for this call
  // and will not call it again.
  void Released();

  // token: cancelled the moment the call's ending is decided (or at its
  // deadline); what a generator polls during a long step.
  CancellationToken token() const { return cancel_.token(); }

  // --- RPC side ------------------------------------------------------------

  // Cancel: nobody wants this call any more because of `cause` (client
  // cancel, deadline, disconnect, stall or shutdown). The first decided
  // ending wins. Safe from any thread.
  void Cancel(EndCause cause);

  // CancelByPeer: the RPC was cancelled from the client's side (gRPC's
  // OnCancel): a client cancel, or the client's own deadline timer (see
  // PeerCancelCause).
  void CancelByPeer();

  // kDeadlineSlack: a client's deadline timer fires (and resets the stream)
  // before the server's, which started counting when the request was read;
  // on a busy server, by a few hundred milliseconds. A cancel from the
  // client's side this close to the deadline counts as the deadline's.
  static constexpr absl::Duration kDeadlineSlack = absl::Milliseconds(250);

  // OnRpcDone: the RPC is over (the reactor's OnDone).
  void OnRpcDone();

  const CallOptions& options() const { return options_; }
  Method method() const { return method_; }

 protected:
  // Work decided under mu_ and carried out after releasing it, so that the
  // driver, gRPC, timers and the report never run under the call's lock.
  struct AfterUnlock {
    bool stop_driver = false;
    bool resume_driver = false;
    absl::Time stall_check_at = absl::InfinitePast();
    bool try_cancel = false;
    bool wait_for_budget = false;
    uint64_t budget_release = 0;  // bytes to return to the output budget
    // write: a stream's next message, handed to gRPC once mu_ is released.
    // Starting a write does transport work inline (serialising, often the
    // socket write itself); under mu_ it would stall the driver or the
    // reactor contending for the lock. The message is the front of the
    // stream's buffer and a write is already marked outstanding, so nothing
    // else writes, finishes or frees it in the meantime.
    const v1::PredictChunk* write = nullptr;
    // on_driver_thread: set by the driver-side methods, so that `write` goes
    // to the driver's WriteStarter if it has one.
    bool on_driver_thread = false;
    // write_buffer_hint: more messages wait behind `write` (see
    // StreamSink::StartWrite): they leave in one transport write, the last
    // one flushing.
    bool write_buffer_hint = false;
    // finish: the status to finish the RPC with, once mu_ is released and
    // everything else here is done (last: once Finish is called the RPC may
    // complete and the sink go away). finish_called_ is already set.
    std::optional<absl::Status> finish;
    std::optional<CallSummary> report;
  };

  Call(Method method, CallOptions options, Timers* timers, ModelStats* stats,
       EndedCallback on_ended);

  // The delivery, implemented per method. All run with mu_ held.
  //
  // AcceptLocked: takes one encoded chunk (already counted). Returns whether
  // the model may go on (false: wait for the client), or an error that ends
  // the call.
  virtual absl::StatusOr<bool> AcceptLocked(std::string bytes, AfterUnlock& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // FinalMessageLocked: the model finished; prepare the final message.
  virtual void FinalMessageLocked(FinishReason reason, const TokenUsage& usage)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // DropBufferedLocked: forget output not yet handed to gRPC (a cancel).
  virtual void DropBufferedLocked(AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {}
  // PumpLocked: lets the RPC make progress: start the next write, or finish
  // once the ending is decided and nothing is left to write.
  virtual void PumpLocked(AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // ArmStallCheckLocked: the call may now wait on its client; make sure a
  // stall check is scheduled.
  virtual void ArmStallCheckLocked(AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {}
  // StartWriteUnlocked / FinishUnlocked: hand the RPC its next message or
  // its status (see AfterUnlock::write and ::finish).
  virtual void StartWriteUnlocked(const v1::PredictChunk& chunk, bool buffer_hint) {}
  virtual void FinishUnlocked(const absl::Status& status) = 0;
  virtual CallSink* sink() const = 0;
  // CheckStallUnlocked: the stall timer fired (streams).
  virtual void CheckStallUnlocked() {}
  // WaitForBudgetUnlocked: register with the output budget (streams).
  virtual void WaitForBudgetUnlocked() {}

  // DecideEndingLocked: the call ends with `cause` and `status` unless its
  // ending is already decided. Returns whether this was the decision.
  bool DecideEndingLocked(EndCause cause, absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // RequestCancelLocked: the one place every reason to stop arrives. Decides
  // the ending (unless already decided), cancels the token, drops buffered
  // output and tells the driver to stop.
  void RequestCancelLocked(EndCause cause, AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // StatusForCancel: the status a call cancelled for `cause` finishes with.
  absl::Status StatusForCancel(EndCause cause) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // PeerCancelCause: kDeadline for a cancel from the client's side within
  // kDeadlineSlack of the deadline, else kClientCancelled (which the service
  // may later tell apart from a disconnect).
  EndCause PeerCancelCause() const;
  // ResumeIfReadyLocked: resumes the driver if it waits and may go on.
  void ResumeIfReadyLocked(AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // MayResumeLocked: whether a driver told kFull may go on (per method).
  virtual bool MayResumeLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return true; }
  void MaybeReportLocked(AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Apply(AfterUnlock& after);

  const Method method_;
  const CallOptions options_;
  Timers* const timers_;

  mutable Mutex mu_;
  // cause_ / finish_status_: how the call ends, once decided (see above).
  std::optional<EndCause> cause_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> finish_status_ ABSL_GUARDED_BY(mu_);
  // finish_called_: the sink's Finish was called, or decided and due as soon
  // as mu_ is released (AfterUnlock::finish); the sink must not be used
  // again, except TryCancel.
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  // hold_finish_: a TryCancel is in progress; Finish must wait for it (once
  // Finish is called the RPC may complete and its context go away).
  bool hold_finish_ ABSL_GUARDED_BY(mu_) = false;
  // driver_waiting_: Emit said kFull and the driver has not been resumed.
  bool driver_waiting_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t chunks_ ABSL_GUARDED_BY(mu_) = 0;  // chunks accepted for delivery
  uint64_t output_bytes_ ABSL_GUARDED_BY(mu_) = 0;

 private:
  void RecordChunkLocked(bool after_cancel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FailLocked: the model (or the delivery) failed with `status`.
  void FailLocked(const absl::Status& status, AfterUnlock& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<EndCause> StopReasonLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ModelStats* const stats_;
  const EndedCallback on_ended_;
  CancellationSource cancel_;
  // driver_ and task_ are set by Attach before the call is shared.
  CallDriver* driver_ = nullptr;
  std::shared_ptr<CallDriver::Task> task_;

  bool rpc_done_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  bool reported_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t chunks_after_cancel_ ABSL_GUARDED_BY(mu_) = 0;
  const absl::Time admitted_at_;
  absl::Time started_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time released_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_chunk_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time cancelled_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// StreamCall: a PredictStream call. Chunks go through a small bounded buffer
// to the client, one write at a time; the last message carries the finish
// reason and usage. A message written while others wait behind it carries
// the buffer hint, so that the chunks a model made ahead of its client leave
// in one transport write (one system call) instead of one each.
class StreamCall final : public Call, public BudgetWaiter {
 public:
  // `sink` must stay valid until the call finishes the RPC through it.
  static std::shared_ptr<StreamCall> Create(CallOptions options, Timers* timers, ModelStats* stats,
                                            StreamSink* sink, EndedCallback on_ended);
  ~StreamCall() override;

  // OnWriteDone: the reactor's OnWriteDone. `ok` false means the stream is
  // broken (the client is gone or the call was cancelled).
  void OnWriteDone(bool ok);

  // CheckStall: the stall timer fired; resets the stream if the write
  // outstanding since before write_stall_timeout has still not completed
  // while the call waits on its client.
  void CheckStall();

  // OnBudgetAvailable: the server-wide output budget has room again.
  void OnBudgetAvailable() override;

 private:
  StreamCall(CallOptions options, Timers* timers, ModelStats* stats, StreamSink* sink,
             EndedCallback on_ended);

  absl::StatusOr<bool> AcceptLocked(std::string bytes, AfterUnlock& after) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinalMessageLocked(FinishReason reason, const TokenUsage& usage) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropBufferedLocked(AfterUnlock& after) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // PumpLocked: starts the next write (after unlocking), or finishes the RPC
  // when due. Finish is only ever called with no write outstanding, so the
  // final message is a plain write and TryCancel (stalls) always precedes
  // Finish.
  void PumpLocked(AfterUnlock& after) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ArmStallCheckLocked(AfterUnlock& after) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // StartWriteUnlocked: hands gRPC `chunk` (the front of pending_), then
  // finishes any completion of it that arrived before StartWrite returned.
  void StartWriteUnlocked(const v1::PredictChunk& chunk, bool buffer_hint) override;
  void FinishUnlocked(const absl::Status& status) override { sink_->Finish(status); }
  CallSink* sink() const override { return sink_; }
  void CheckStallUnlocked() override { CheckStall(); }
  void WaitForBudgetUnlocked() override;
  bool MayResumeLocked() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // WriteDoneLocked: what OnWriteDone does, once StartWrite has returned.
  void WriteDoneLocked(bool ok, AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // WaitingOnClientLocked: a write is outstanding and the call cannot go on
  // until it completes: the buffer is full, the output budget is spent, or
  // the stream is ending.
  bool WaitingOnClientLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // BufferFullLocked / BufferDrainedLocked: the model pauses when the buffer
  // is full and resumes once half of it has been written.
  bool BufferFullLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool BufferDrainedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // PopFrontLocked / PopBackLocked: forget one buffered message.
  void PopFrontLocked(AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PopBackLocked(AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // MessageQueue: a FIFO of messages whose front keeps its address while
  // messages are added behind it (gRPC reads the front while it is being
  // written). The front lives inline and the rest in a deque made the first
  // time two messages wait: a stream whose client keeps up (every paced
  // stream) allocates nothing for it, where a std::deque allocates 576 bytes
  // as it is constructed.
  class MessageQueue {
   public:
    bool empty() const { return !has_front_; }
    size_t size() const { return has_front_ ? 1 + (rest_ ? rest_->size() : 0) : 0; }
    v1::PredictChunk& front() { return front_; }
    v1::PredictChunk& back() { return rest_ && !rest_->empty() ? rest_->back() : front_; }
    v1::PredictChunk& emplace_back();
    void pop_front();
    void pop_back();

   private:
    bool has_front_ = false;
    v1::PredictChunk front_;
    std::optional<std::deque<v1::PredictChunk>> rest_;
  };

  StreamSink* const sink_;
  // pending_: messages not yet confirmed written; front() is being written
  // while write_in_flight_ (from the moment the write is decided, before
  // StartWrite is called outside the lock, until OnWriteDone).
  MessageQueue pending_ ABSL_GUARDED_BY(mu_);
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // output bytes in pending_
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  // write_starting_: the write in flight was decided and StartWrite has not
  // returned yet. gRPC serialises the message inside StartWrite and may
  // complete the write on another thread before StartWrite returns; such a
  // completion is parked in early_write_done_ (its `ok`) and finished by the
  // starting thread, so the message is never freed, nor the RPC finished,
  // while StartWrite may still be reading it. (This ordering is also what
  // ThreadSanitizer can see: gRPC's own synchronisation is uninstrumented.)
  bool write_starting_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<bool> early_write_done_ ABSL_GUARDED_BY(mu_);
  absl::Time write_started_at_ ABSL_GUARDED_BY(mu_);
  bool stall_timer_armed_ ABSL_GUARDED_BY(mu_) = false;
  // budget_paused_: the output budget was spent when a chunk came; the
  // model waits for OnBudgetAvailable.
  bool budget_paused_ ABSL_GUARDED_BY(mu_) = false;
};

// UnaryCall: a Predict call. Chunks are gathered into one response.
class UnaryCall final : public Call {
 public:
  static std::shared_ptr<UnaryCall> Create(CallOptions options, Timers* timers, ModelStats* stats,
                                           UnarySink* sink, EndedCallback on_ended);

 private:
  UnaryCall(CallOptions options, Timers* timers, ModelStats* stats, UnarySink* sink,
            EndedCallback on_ended);

  absl::StatusOr<bool> AcceptLocked(std::string bytes, AfterUnlock& after) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinalMessageLocked(FinishReason reason, const TokenUsage& usage) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PumpLocked(AfterUnlock& after) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  CallSink* sink() const override { return sink_; }
  // FinishUnlocked: the response goes with an OK status only. Read without
  // mu_: an OK finish is decided by Complete after the model's last chunk,
  // and nothing changes response_ after that.
  void FinishUnlocked(const absl::Status& status) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    sink_->Finish(status, status.ok() ? &response_ : nullptr);
  }

  UnarySink* const sink_;
  v1::PredictResponse response_ ABSL_GUARDED_BY(mu_);
};

// ToProtoFinishReason: FinishReason in wire form.
v1::FinishReason ToProtoFinishReason(FinishReason reason);

}  // namespace sluice

#endif  // SLUICE_HANDLERS_CALL_H_
