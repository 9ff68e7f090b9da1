#ifndef SLUICE_HANDLERS_EXECUTOR_H_
#define SLUICE_HANDLERS_EXECUTOR_H_

#include <deque>
#include <list>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "handlers/call.h"
#include "handlers/stats.h"
#include "models/model.h"
#include "models/sync.h"

namespace sluice {

// ExecutorOptions: how one model's calls are scheduled.
struct ExecutorOptions {
  // Worker threads stepping this model's generators.
  int workers = 2;
  // Calls that may be generating at once (their generators exist). Paced or
  // blocked calls hold a slot but no thread; workers interleave active calls
  // one time slice at a time.
  int max_active = 256;
  // Admitted calls that may wait for a slot; beyond it, RESOURCE_EXHAUSTED.
  int queue_capacity = 1024;
};

// Executor runs one generator model's calls: a bounded FIFO queue of calls
// waiting for an active slot, and a fixed pool of workers that give runnable
// calls turns, each turn stepping the call's generator for up to one time
// slice.
//
// clang-format off
// A call's task (Phase, guarded by the task's mutex):
//
//   kPending ──turn──▶ kRunning ◀──turn── kRunnable ◀── kBlocked  (Emit said kFull; ResumeTask)
//      │                 │  │  │    ◀──turn── kSleeping (Step::WaitUntil; its time came)
//      │                 │  │  └─ yield ──▶ kRunnable
//      └──StopTask──┐    │  └──────────────▶ kBlocked / kSleeping
//                   ▼    └─ done / error / stopped
//                  kEnded ◀────────┘
// clang-format on
//
// Pacing holds no thread and needs no timer thread: a sleeping call waits in
// the executor's own queue of wake times, and an idle worker (the "timer
// keeper") waits on its condition variable for the earliest of them, then
// takes every call that is due in one go. The keeper wakes kTimerSlack after
// the earliest time, so that the calls due within it (10 per millisecond
// with 10,000 streams of a chunk a second) cost one wake-up, not one each
// plus a hand-off from a timer thread. A call is never resumed before its
// time.
//
// Only the worker running a turn (kRunning) touches the generator. A
// StopTask that finds the task parked (kPending, kRunnable, kBlocked,
// kSleeping) ends it at once, on the stopping thread: the generator is
// released there and then, before StopTask returns, unless a worker took
// the task up in the instant between (then it is that turn's). A StopTask
// during a turn is seen by the worker as soon as the step in flight
// returns; no further step is started. Admission never blocks: a call is
// given a slot, queued, or refused at once. A queued call that is stopped
// leaves the queue at once and never starts.
//
// Lock order: a task's mutex may be held while taking the executor's; the
// executor never calls into a task or a call while holding its own.
class Executor final : public CallDriver {
 public:
  Executor(std::string model, ExecutorOptions options);
  // Stops the workers (see Stop).
  ~Executor() override;

  // Start: launches the worker threads.
  void Start();

  // Admit: gives `call` (whose model work `prepared` starts) a slot, or
  // queues it. Returns RESOURCE_EXHAUSTED naming the model and the limit
  // when the queue is full; the call is then not attached.
  absl::Status Admit(const std::shared_ptr<Call>& call, std::unique_ptr<PreparedCall> prepared);

  // CancelAll: cancels every admitted call (queued or active) with `cause`.
  void CancelAll(EndCause cause);

  // WaitIdle: blocks until no call is admitted, or `deadline` passes.
  // Returns true if idle.
  bool WaitIdle(absl::Time deadline) const;

  // Stop: stops the workers once the run queue is drained. Returns false if a
  // worker did not return by `deadline` (a model step that never returns);
  // such workers are detached and the Executor must then never be destroyed.
  bool Stop(absl::Time deadline = absl::InfiniteFuture());

  // WaitForQueued: blocks until at least `n` calls wait in the queue, or
  // `deadline` passes. Returns true if they do. For tests and tools.
  bool WaitForQueued(int n, absl::Time deadline) const;

  // WaitQuiescent: blocks until no turn is running or runnable (every
  // admitted call is parked: queued, blocked on its client, or sleeping), or
  // `deadline` passes. Returns true if quiescent. For tests and drains.
  bool WaitQuiescent(absl::Time deadline) const;

  // Gauges, for metrics.
  int queued() const;        // calls waiting for a slot
  int active() const;        // calls holding a slot
  int busy_workers() const;  // workers inside a turn

  const std::string& model() const { return model_; }
  const ExecutorOptions& options() const { return options_; }

  // CallDriver:
  void StopTask(Task& task) override;
  void ResumeTask(Task& task) override;

  // kTimerSlack: how late after its time a sleeping call may be resumed, so
  // that calls due close together are resumed by one wake-up.
  static constexpr absl::Duration kTimerSlack = absl::Milliseconds(1);

 private:
  // Phase: where a call's task is (see the diagram above).
  enum class Phase { kPending, kRunnable, kRunning, kBlocked, kSleeping, kEnded };
  class GeneratorTask;

  // IdleWorker: how one worker waits for work. Each worker has its own, so
  // that waking one is a signal to exactly that thread: no condition
  // variable shared by all workers, whose waking can make the signalling
  // thread wait for the previously woken worker to be scheduled.
  struct IdleWorker {
    CondVar cv;
    bool woken = false;  // guarded by mu_
  };

  // Sleeper: a call waiting for its Step::WaitUntil time. Weak: a call
  // stopped while it sleeps ends at once and leaves its entry to expire.
  struct Sleeper {
    absl::Time wake_at;
    uint64_t seq;  // FIFO among equal times
    std::weak_ptr<GeneratorTask> task;
    bool operator>(const Sleeper& other) const {
      return wake_at != other.wake_at ? wake_at > other.wake_at : seq > other.seq;
    }
  };

  // RunTurn: steps `task`'s generator for up to one time slice.
  void RunTurn(const std::shared_ptr<GeneratorTask>& task);
  // Park: the turn is over and `task` waits (`phase`: kRunnable, kBlocked or
  // kSleeping until `wake_at`), unless it was stopped or resumed meanwhile.
  void Park(const std::shared_ptr<GeneratorTask>& task, Phase phase, absl::Time wake_at);
  // End: `task` is over: release its generator, free its slot, and tell its
  // call. Returns at once if it had already ended. kWorker: the worker
  // running its turn ends it. kStopper: StopTask found it parked; if a
  // worker has taken it up since (its lock was released in between), the
  // stop is left to that worker instead.
  enum class Ender { kWorker, kStopper };
  void End(GeneratorTask& task, Ender ender);
  // Sleep: `task` (now kSleeping) is due at `wake_at`.
  void Sleep(const std::shared_ptr<GeneratorTask>& task, absl::Time wake_at);

  void Schedule(std::shared_ptr<GeneratorTask> task);  // append to the run queue
  void Leave(GeneratorTask& task);                     // the task ended; free its place

  // PromoteLocked: gives a freed slot to the first queued call, if any; the
  // worker to wake for it (to be signalled after unlocking), or nullptr.
  IdleWorker* PromoteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // WakeOneLocked: takes the most recently idle worker (its caches are the
  // warmest) off the idle stack, sparing the timer keeper if another is
  // idle; the caller signals it after unlocking.
  IdleWorker* WakeOneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // TakeDueLocked: moves the sleepers due by `now` to the run queue (still
  // kSleeping: RunTurn takes them from there). Returns how many.
  int TakeDueLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // WaitForWorkLocked: `idle` waits until woken for work, or, as the timer
  // keeper, until the earliest sleeper is due (plus kTimerSlack).
  void WaitForWorkLocked(IdleWorker* idle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WorkerLoop(IdleWorker* idle);

  const std::string model_;
  const ExecutorOptions options_;

  mutable Mutex mu_;
  mutable CondVar idle_cv_;  // signalled whenever admission, the queue or the workers change
  std::list<std::shared_ptr<GeneratorTask>> admitted_ ABSL_GUARDED_BY(mu_);
  std::list<std::shared_ptr<GeneratorTask>> waiting_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<GeneratorTask>> runnable_ ABSL_GUARDED_BY(mu_);
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  int live_workers_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Workers waiting for work, the most recently idle last. A worker leaves
  // the stack when woken for a call in the run queue or at stop.
  std::vector<IdleWorker*> idle_ ABSL_GUARDED_BY(mu_);
  // Sleeping calls, the earliest first, and the idle worker waiting for the
  // earliest one's time (nullptr: none is; a worker that goes idle with
  // sleepers waiting takes the role).
  std::priority_queue<Sleeper, std::vector<Sleeper>, std::greater<>> sleeping_ ABSL_GUARDED_BY(mu_);
  uint64_t next_sleeper_seq_ ABSL_GUARDED_BY(mu_) = 0;
  IdleWorker* timer_keeper_ ABSL_GUARDED_BY(mu_) = nullptr;
  // One per worker, alive as long as the executor (so a worker may be
  // signalled after mu_ is released, even if it has returned meanwhile).
  std::vector<std::unique_ptr<IdleWorker>> idle_workers_;
  std::vector<std::thread> workers_;
};

}  // namespace sluice

#endif  // SLUICE_HANDLERS_EXECUTOR_H_
