#ifndef SLUICE_HANDLERS_CALL_H_
#define SLUICE_HANDLERS_CALL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "handlers/sinks.h"
#include "handlers/stats.h"
#include "handlers/timer_queue.h"
#include "models/cancellation.h"
#include "models/model.h"
#include "models/sync.h"

namespace sluice {

class Executor;

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
  // and the bytes they may add up to. When either is reached the generator is
  // not asked for more until the client has drained half of it.
  size_t stream_buffer_chunks = 64;
  size_t stream_buffer_bytes = 1 << 20;
  // Streams: how long a write may stay outstanding while the buffer is full
  // (or the stream is ending) before the client counts as stalled and the
  // stream is cancelled.
  absl::Duration write_stall_timeout = absl::Seconds(10);
  // Unary: the largest output a Predict response may carry.
  size_t max_unary_output_bytes = 4 << 20;
};

// CallSummary: how a call ended. Reported exactly once, when its RPC is done
// and its generator has been released (or was never created).
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
  absl::Duration run_time;    // model start until the generator was released
  absl::Time cancelled_at = absl::InfinitePast();  // when the server learned of a cancel
};

// Call drives one model generator for one RPC: it decides when the generator
// runs, delivers its chunks to the RPC, and stops it the moment the RPC is no
// longer wanted.
//
// clang-format off
// Lifecycle (Phase, guarded by mu_):
//
//   kPending ──turn──▶ kRunning ◀──turn── kRunnable ◀─┬─ kBlocked  (buffer full; a write drains it)
//      │                 │  ├──────────────────────────┴─ kSleeping (Step::WaitUntil; a timer wakes it)
//      │                 │  └─ yield ──▶ kRunnable
//      └──cancel──┐      └─ done / error / cancel
//                 ▼              ▼
//                kEnded ◀────────┘
// clang-format on
//
// Only the worker running a turn (phase kRunning) touches the generator. A
// cancel that arrives while a call is parked (kPending, kRunnable, kBlocked,
// kSleeping) ends it at once, on the cancelling thread: the generator is
// released there and then. A cancel during a turn is seen by the worker as
// soon as the step in flight returns; no further step is started. In every
// case the RPC is finished as soon as no write is outstanding, without waiting
// for the step in flight.
//
// Ownership: shared by the reactor (until its OnDone), the executor (while
// queued or runnable) and timers (weakly).
class Call : public std::enable_shared_from_this<Call> {
 public:
  using EndedCallback = std::function<void(const CallSummary&)>;

  virtual ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // RunTurn: runs the generator for up to one time slice. Executor workers
  // only; the call reschedules itself (or parks) before returning.
  void RunTurn();

  // Cancel: nobody wants this call any more because of `cause` (client
  // cancel, deadline, disconnect, stall or shutdown). Idempotent; the first
  // cause wins. Safe from any thread that does not hold mu_.
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

  // OnRpcDone: the RPC is over (the reactor's OnDone). Triggers the report.
  void OnRpcDone();

  const CallOptions& options() const { return options_; }
  Method method() const { return method_; }
  CancellationToken token() const { return cancel_.token(); }

 protected:
  enum class Phase { kPending, kRunnable, kRunning, kBlocked, kSleeping, kEnded };

  // Work decided under mu_ and carried out after releasing it, so that user
  // code (generator destructors), gRPC cancellation, executor calls and the
  // report never run under the call's lock.
  struct AfterUnlock {
    std::unique_ptr<EncodedGenerator> release;
    std::unique_ptr<PreparedCall> discard;
    bool leave_executor = false;
    bool schedule = false;
    absl::Time wake_at = absl::InfinitePast();
    absl::Time stall_check_at = absl::InfinitePast();
    bool try_cancel = false;
    // write: a stream's next message, handed to gRPC once mu_ is released.
    // Starting a write does transport work inline (serialising, often the
    // socket write itself); under mu_ it would stall the worker or the
    // reactor contending for the lock. The message is pending_.front() and
    // write_in_flight_ is already set, so nothing else writes, finishes or
    // frees it in the meantime.
    const v1::PredictChunk* write = nullptr;
    // finish: the status to finish the RPC with, once mu_ is released and
    // everything else here is done (last: once Finish is called the RPC may
    // complete and the sink go away). finish_called_ is already set, so
    // nothing else writes or finishes, and a TryCancel in progress held it
    // back (hold_finish_) until it returned.
    std::optional<absl::Status> finish;
    std::optional<CallSummary> report;
  };

  Call(Method method, CallOptions options, std::unique_ptr<PreparedCall> prepared,
       Executor* executor, Timers* timers, ModelStats* stats, EndedCallback on_ended);

  // The RPC side, implemented per method. All run with mu_ held.
  //
  // EmitLocked: delivers one encoded chunk. Returns true if the generator may
  // run on, false if the call must wait for the client (buffer full), or an
  // error that ends the call.
  virtual absl::StatusOr<bool> EmitLocked(std::string bytes, AfterUnlock& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // CompleteLocked: the generator finished; finish the RPC with success.
  virtual void CompleteLocked(FinishReason reason, AfterUnlock& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // FinishWithErrorLocked: finish the RPC with `status` (already-produced
  // output is flushed first for a model error, dropped for a cancel).
  virtual void FinishWithErrorLocked(const absl::Status& status, bool flush, AfterUnlock& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  virtual CallSink* sink() = 0;
  // PumpLocked: lets the RPC side make progress (start a write, finish).
  virtual void PumpLocked(AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {}
  // StartWriteUnlocked: hands `chunk` to the RPC (see AfterUnlock::write).
  virtual void StartWriteUnlocked(const v1::PredictChunk& chunk) {}
  // FinishUnlocked: finishes the RPC with `status` (see AfterUnlock::finish).
  virtual void FinishUnlocked(const absl::Status& status) = 0;
  // MaybeArmStallTimerLocked: the call now waits on the client; make sure a
  // stall check is scheduled.
  virtual void MaybeArmStallTimerLocked(AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {}

  // Helpers for subclasses.
  void RequestCancelLocked(EndCause cause, AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeReportLocked(AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Apply(AfterUnlock& after);
  uint64_t chunks_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return chunks_; }
  uint64_t output_bytes_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return output_bytes_; }

  const Method method_;
  const CallOptions options_;
  Timers* const timers_;

  mutable Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kPending;
  // finish_called_: the sink's Finish was called, or decided and due as soon
  // as mu_ is released (AfterUnlock::finish); the sink must not be used
  // again, except TryCancel.
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  bool rpc_done_ ABSL_GUARDED_BY(mu_) = false;
  // hold_finish_: a TryCancel is in progress; Finish must wait for it (once
  // Finish is called the RPC may complete and its context go away).
  bool hold_finish_ ABSL_GUARDED_BY(mu_) = false;
  // final_status_: the status the RPC was finished with.
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);

 private:
  friend class Executor;

  // Bookkeeping owned by the Executor, guarded by the executor's mutex.
  struct ExecutorState {
    bool admitted = false;    // in Executor::admitted_
    bool waiting = false;     // in Executor::waiting_ (no active slot yet)
    bool holds_slot = false;  // counts against max_active
    std::list<std::shared_ptr<Call>>::iterator admitted_pos;
    std::list<std::shared_ptr<Call>>::iterator waiting_pos;
  };

  // Start or step the generator; an exception from model code becomes INTERNAL.
  absl::StatusOr<std::unique_ptr<EncodedGenerator>> GuardedStart();
  Step<std::string> GuardedNext();

  // TakeStepLocked: acts on what one step of a turn produced (`step` is
  // empty right after the generator was created). Returns true when the turn
  // is over (the call blocked, slept, yielded or ended).
  bool TakeStepLocked(std::optional<Step<std::string>>& step, absl::Time slice_end, int& steps,
                      AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // PeerCancelCause: kDeadline for a cancel from the client's side within
  // kDeadlineSlack of the deadline, else kClientCancelled (which the service
  // may later tell apart from a disconnect).
  EndCause PeerCancelCause() const;
  // ShouldStopLocked: whether the running turn must stop because the call is
  // no longer wanted; requests the cancel if it just found out.
  bool ShouldStopLocked(AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // EndLocked: moves to kEnded and releases the generator (after unlock).
  void EndLocked(EndStage stage, AfterUnlock& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FailLocked: the model failed with `status`: flush what it produced, then
  // finish the RPC with the error.
  void FailLocked(const absl::Status& status, AfterUnlock& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StatusForCancel(EndCause cause) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordChunkLocked(bool after_cancel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Wake();

  Executor* const executor_;
  ModelStats* const stats_;
  const EndedCallback on_ended_;
  CancellationSource cancel_;
  ExecutorState executor_state_;  // see ExecutorState

  // prepared_ and generator_ are touched only by the worker running a turn
  // (phase kRunning), or under mu_ while no turn runs.
  std::unique_ptr<PreparedCall> prepared_;
  std::unique_ptr<EncodedGenerator> generator_;
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<EndCause> cause_ ABSL_GUARDED_BY(mu_);
  EndStage stage_ ABSL_GUARDED_BY(mu_) = EndStage::kQueued;
  bool reported_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t chunks_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t chunks_after_cancel_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t output_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  const absl::Time admitted_at_;
  absl::Time started_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time ended_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_chunk_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time cancelled_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  friend class StreamCall;
  friend class UnaryCall;
};

// StreamCall: a PredictStream call. Chunks go through a small bounded buffer
// to the client, one write at a time; the last message carries the finish
// reason and usage.
class StreamCall final : public Call {
 public:
  // `sink` must stay valid until the call finishes the RPC through it.
  static std::shared_ptr<StreamCall> Create(CallOptions options,
                                            std::unique_ptr<PreparedCall> prepared,
                                            Executor* executor, Timers* timers, ModelStats* stats,
                                            StreamSink* sink, EndedCallback on_ended);

  // OnWriteDone: the reactor's OnWriteDone. `ok` false means the stream is
  // broken (the client is gone or the call was cancelled).
  void OnWriteDone(bool ok);

  // CheckStall: the stall timer fired; cancels the stream if the write
  // outstanding since before write_stall_timeout has still not completed.
  void CheckStall();

 private:
  StreamCall(CallOptions options, std::unique_ptr<PreparedCall> prepared, Executor* executor,
             Timers* timers, ModelStats* stats, StreamSink* sink, EndedCallback on_ended);

  absl::StatusOr<bool> EmitLocked(std::string bytes, AfterUnlock& after) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CompleteLocked(FinishReason reason, AfterUnlock& after) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishWithErrorLocked(const absl::Status& status, bool flush, AfterUnlock& after) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  CallSink* sink() override { return sink_; }

  // PumpLocked: starts the next write (after unlocking), or finishes the RPC
  // when due. Finish is only ever called with no write outstanding, so the
  // final message is a plain write and TryCancel (stalls) always precedes
  // Finish.
  void PumpLocked(AfterUnlock& after) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartWriteUnlocked(const v1::PredictChunk& chunk) override { sink_->StartWrite(&chunk); }
  void FinishUnlocked(const absl::Status& status) override { sink_->Finish(status); }
  // MaybeArmStallTimerLocked: schedules a stall check for when the write
  // outstanding now would count as stalled.
  void MaybeArmStallTimerLocked(AfterUnlock& after) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // WaitingOnClientLocked: a write is outstanding and the call cannot go on
  // until it completes (buffer full, or the stream is ending).
  bool WaitingOnClientLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // BufferFullLocked / BufferDrainedLocked: the generator pauses when the
  // buffer is full and resumes once half of it has been written.
  bool BufferFullLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool BufferDrainedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // PopFrontLocked: drops the message just written.
  void PopFrontLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  StreamSink* const sink_;
  // pending_: encoded chunks not yet confirmed written; front() is being
  // written while write_in_flight_ (from the moment the write is decided,
  // before StartWrite is called outside the lock, until OnWriteDone).
  std::deque<v1::PredictChunk> pending_ ABSL_GUARDED_BY(mu_);
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // output bytes in pending_
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time write_started_at_ ABSL_GUARDED_BY(mu_);
  uint64_t next_index_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<absl::Status> finish_status_ ABSL_GUARDED_BY(mu_);  // finish once pending_ drains
  bool stall_timer_armed_ ABSL_GUARDED_BY(mu_) = false;
};

// UnaryCall: a Predict call. Chunks are gathered into one response.
class UnaryCall final : public Call {
 public:
  static std::shared_ptr<UnaryCall> Create(CallOptions options,
                                           std::unique_ptr<PreparedCall> prepared,
                                           Executor* executor, Timers* timers, ModelStats* stats,
                                           UnarySink* sink, EndedCallback on_ended);

 private:
  UnaryCall(CallOptions options, std::unique_ptr<PreparedCall> prepared, Executor* executor,
            Timers* timers, ModelStats* stats, UnarySink* sink, EndedCallback on_ended);

  absl::StatusOr<bool> EmitLocked(std::string bytes, AfterUnlock& after) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CompleteLocked(FinishReason reason, AfterUnlock& after) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishWithErrorLocked(const absl::Status& status, bool flush, AfterUnlock& after) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  CallSink* sink() override { return sink_; }
  // FinishUnlocked: the response goes with an OK status only. Read without
  // mu_: an OK finish is decided by CompleteLocked after the generator's last
  // step, and nothing changes response_ after that.
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
