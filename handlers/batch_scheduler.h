#ifndef SLUICE_HANDLERS_BATCH_SCHEDULER_H_
#define SLUICE_HANDLERS_BATCH_SCHEDULER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "handlers/call.h"
#include "handlers/clock.h"
#include "handlers/stats.h"
#include "handlers/write_starter.h"
#include "models/batched_model.h"
#include "models/cancellation.h"
#include "models/sync.h"

namespace sluice {

// BatchOptions: how one batched model's calls are scheduled.
struct BatchOptions {
  // The model's limits (BatchedModelBase::limits), with any overrides.
  BatchLimits limits;
  // Calls that may wait to join; beyond it, RESOURCE_EXHAUSTED.
  int queue_capacity = 1024;
};

// BatchStats: what one batched model's loop did, for metrics and tests.
// Lock-free; written by the loop only.
class BatchStats {
 public:
  BatchStats();

  // steps: model steps run (calls of Step), and sequence-steps (the sum of
  // their batch sizes).
  uint64_t steps() const { return steps_.load(); }
  uint64_t sequence_steps() const { return sequence_steps_.load(); }
  // sequence_steps_after_end: sequence-steps whose result was for a call
  // that had already ended by the time the step returned: the step in
  // flight when a caller left. At most one per sequence (see
  // steps_after_end); the number none of the peers publish.
  uint64_t sequence_steps_after_end() const { return sequence_steps_after_end_.load(); }
  // left: sequences that left the batch (were released), by the cause of
  // their call's end as known then (a client-side cancel is
  // kClientCancelled; the service tells disconnects apart later).
  uint64_t left(EndCause cause) const { return left_[static_cast<int>(cause)].load(); }
  // sat_out: times a sequence sat out of the batch because its client was
  // not reading (or the output budget was spent).
  uint64_t sat_out() const { return sat_out_.load(); }

  const Histogram& batch_size() const { return batch_size_; }
  const Histogram& step_time() const { return step_time_; }
  // steps_after_end: per released sequence, the sequence-steps computed for
  // it after its call had ended (0 or 1).
  const Histogram& steps_after_end() const { return steps_after_end_; }

 private:
  friend class BatchScheduler;
  std::atomic<uint64_t> steps_{0};
  std::atomic<uint64_t> sequence_steps_{0};
  std::atomic<uint64_t> sequence_steps_after_end_{0};
  std::array<std::atomic<uint64_t>, kNumEndCauses> left_{};
  std::atomic<uint64_t> sat_out_{0};
  Histogram batch_size_;
  Histogram step_time_;
  Histogram steps_after_end_;
};

// BatchScheduler runs one batched model's calls: a bounded FIFO queue of
// sequences waiting to join, and one loop thread that advances every ready
// sequence with one model step at a time (continuous batching). At each
// step boundary the loop:
//
//   1. releases every sequence whose call ended (for any reason: client
//      cancel, deadline, disconnect, stall, shutdown, error). None is in a
//      step after the one in flight when its call ended;
//   2. starts queued sequences, oldest first, while the batch, the held
//      sequences and the state budget allow;
//   3. runs Step once over the batch: the sequences that were ready, then
//      the ones just started (up to max_batch; the rest wait their turn);
//   4. hands each sequence's chunk to its call. A sequence whose client is
//      not reading (Emit said kFull) sits out, holding its state, until its
//      call resumes it; the others go on at their pace.
//
// Where releases happen: a sequence is started, stepped and released on the
// loop thread only, so the model needs no locking. A call that ends while
// its sequence is between steps is released at the next boundary (the loop
// is woken for it, and does it before anything else); while in a step, right
// after that step returns; while still queued, at once on the ending thread
// (the model never saw it). The step in flight gets a cancellation token
// that fires when every sequence in it has ended.
//
// Testing: constructed and not Started, the scheduler runs a boundary and a
// step only when RunStep is called, so a test decides exactly where the
// boundaries fall.
class BatchScheduler final : public CallDriver {
 public:
  // `model`, `clock` outlive the scheduler.
  BatchScheduler(std::string name, BatchedModelBase* model, BatchOptions options,
                 const Clock* clock = Clock::Real());
  // Stops the loop (see Stop).
  ~BatchScheduler() override;

  // Start: launches the loop thread.
  void Start();

  // Admit: queues `call`, whose model work is `sequence`, to join the batch
  // at the next boundary that has room. RESOURCE_EXHAUSTED naming the model
  // and the limit when the queue is full; the call is then not attached.
  absl::Status Admit(const std::shared_ptr<Call>& call,
                     std::unique_ptr<BatchedModelBase::Sequence> sequence);

  // RunStep: one step boundary and, if any sequence is ready, one step.
  // Returns whether it did anything. The loop thread calls it; so do tests
  // of a scheduler that was not started (never both).
  bool RunStep();

  // CancelAll: cancels every admitted call (queued or in the batch).
  void CancelAll(EndCause cause);

  // WaitIdle: blocks until no call is admitted, or `deadline` passes.
  bool WaitIdle(absl::Time deadline) const;

  // Stop: stops the loop once no call is left. Returns false if the loop did
  // not return by `deadline` (a model step that never returns); the loop is
  // then detached and the scheduler must never be destroyed.
  bool Stop(absl::Time deadline = absl::InfiniteFuture());

  // WaitForQueued: blocks until at least `n` calls wait to join, or
  // `deadline` passes. For tests and tools.
  bool WaitForQueued(int n, absl::Time deadline) const;

  // Gauges, for metrics and tests.
  int queued() const;            // calls waiting to join
  int held() const;              // sequences holding model state (in the batch or sitting out)
  int sitting_out() const;       // sequences waiting on their clients
  uint64_t state_bytes() const;  // memory the held sequences' state holds (StateBytes)

  const std::string& name() const { return name_; }
  const BatchOptions& options() const { return options_; }
  int max_sequences() const { return max_sequences_; }
  const BatchStats& stats() const { return stats_; }

  // CallDriver:
  void StopTask(Task& task) override;
  void ResumeTask(Task& task) override;
  // write_starter: the loop hands the writes its deliveries decide to a
  // thread of their own, so that a step's N writes (gRPC's transport work,
  // a system call each) overlap the next step instead of delaying it.
  WriteStarter* write_starter() override { return &write_starter_; }

 private:
  class Entry;
  using EntryList = std::list<std::shared_ptr<Entry>>;

  // Where an entry is. Guarded by mu_.
  enum class Where {
    kQueued,      // in queue_: not started, no model state
    kReady,       // in ready_: started, takes part in the next step
    kInStep,      // in in_step_: taken by the loop for the step being run
    kSittingOut,  // in sitting_out_: started, waiting on its client
    kLeaving,     // in leaving_: its call ended; released at the next boundary
    kReleasing,   // taken by the loop (or the ending thread) to be released; no list
    kEnded,       // released (or never admitted); no list
  };

  // MoveLocked: takes `entry` out of its list and puts it in `to`'s (none
  // for kInStep and kEnded).
  void MoveLocked(Entry& entry, Where to) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  EntryList* ListLocked(Where where) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Release: frees what the model holds for `entry` (loop thread), or just
  // forgets a never-started one; then tells its call.
  void Release(Entry& entry);
  // HasWorkLocked: whether a boundary now would do anything.
  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int JoinableLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Loop();

  const std::string name_;
  BatchedModelBase* const model_;
  const BatchOptions options_;
  const int max_sequences_;
  const Clock* const clock_;
  BatchStats stats_;

  mutable Mutex mu_;
  mutable CondVar cv_;  // the loop's wake-ups, and WaitIdle/WaitForQueued
  EntryList queue_ ABSL_GUARDED_BY(mu_);
  EntryList ready_ ABSL_GUARDED_BY(mu_);
  EntryList in_step_ ABSL_GUARDED_BY(mu_);
  EntryList sitting_out_ ABSL_GUARDED_BY(mu_);
  EntryList leaving_ ABSL_GUARDED_BY(mu_);
  int admitted_ ABSL_GUARDED_BY(mu_) = 0;  // entries not yet ended
  int held_ ABSL_GUARDED_BY(mu_) = 0;      // started and not yet released
  uint64_t state_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The step being run: its cancellation, and how many of its sequences are
  // still wanted (when none is, the step's token fires).
  std::shared_ptr<CancellationSource> step_cancel_ ABSL_GUARDED_BY(mu_);
  int wanted_in_step_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool loop_exited_ ABSL_GUARDED_BY(mu_) = false;
  std::thread loop_;

  // Starts the writes the loop decides. Destroyed (after running everything
  // posted) once the destructor has stopped the loop, and before anything its
  // tasks reach (the lists, mu_, stats_, model_): keep it after those.
  WriteStarter write_starter_;

  // The loop's scratch space, reused from step to step (loop thread only).
  std::vector<std::shared_ptr<Entry>> batch_;
  std::vector<BatchedModelBase::Sequence*> sequences_;
  std::vector<BatchedModelBase::EncodedStep> out_;
};

}  // namespace sluice

#endif  // SLUICE_HANDLERS_BATCH_SCHEDULER_H_
