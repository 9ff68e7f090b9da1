#include "handlers/executor.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"

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

// GeneratorTask: one call's generator as the executor runs it.
class Executor::GeneratorTask final : public CallDriver::Task,
                                      public std::enable_shared_from_this<GeneratorTask> {
 public:
  GeneratorTask(std::shared_ptr<Call> call, std::unique_ptr<PreparedCall> prepared)
      : call_(std::move(call)), prepared_(std::move(prepared)) {}

  ~GeneratorTask() override {
    DCHECK(generator_ == nullptr) << "a task was destroyed holding its generator";
  }

  Mutex mu;
  Phase phase ABSL_GUARDED_BY(mu) = Phase::kPending;
  // Notices that arrived during a turn, for the worker to act on.
  std::atomic<bool> stop_requested{false};
  bool resume_requested ABSL_GUARDED_BY(mu) = false;

  // call_, prepared_ and generator_ are touched only by the worker running a
  // turn (kRunning), or under mu while no turn runs. End moves them out;
  // call_ is the task's strong reference to its call (which holds the task),
  // so it is dropped when the task ends.
  std::shared_ptr<Call> call_;
  std::unique_ptr<PreparedCall> prepared_;
  std::unique_ptr<EncodedGenerator> generator_;
  uint64_t steps_ = 0;  // generator steps taken, for messages

  // The executor's bookkeeping, guarded by the executor's mu_.
  bool admitted = false;    // in admitted_
  bool waiting = false;     // in waiting_ (no active slot yet)
  bool holds_slot = false;  // counts against max_active
  std::list<std::shared_ptr<GeneratorTask>>::iterator admitted_pos;
  std::list<std::shared_ptr<GeneratorTask>>::iterator waiting_pos;
};

Executor::Executor(std::string model, ExecutorOptions options)
    : model_(std::move(model)), options_(options) {
  CHECK_GE(options_.workers, 1);
  CHECK_GE(options_.max_active, 1);
  CHECK_GE(options_.queue_capacity, 0);
}

Executor::~Executor() { Stop(); }

void Executor::Start() {
  MutexLock lock(&mu_);
  CHECK(workers_.empty()) << "Executor::Start called twice";
  for (int i = 0; i < options_.workers; ++i) {
    ++live_workers_;
    IdleWorker* idle = idle_workers_.emplace_back(std::make_unique<IdleWorker>()).get();
    workers_.emplace_back([this, idle] { WorkerLoop(idle); });
  }
}

absl::Status Executor::Admit(const std::shared_ptr<Call>& call,
                             std::unique_ptr<PreparedCall> prepared) {
  auto task = std::make_shared<GeneratorTask>(call, std::move(prepared));
  IdleWorker* wake = nullptr;
  {
    MutexLock lock(&mu_);
    if (active_ < options_.max_active) {
      ++active_;
      task->holds_slot = true;
      runnable_.push_back(task);
      wake = WakeOneLocked();
    } else if (static_cast<int>(waiting_.size()) < options_.queue_capacity) {
      task->waiting = true;
      task->waiting_pos = waiting_.insert(waiting_.end(), task);
      idle_cv_.SignalAll();  // WaitForQueued
    } else {
      task->call_.reset();  // never admitted: no cycle to leave behind
      return absl::ResourceExhaustedError(absl::StrCat(
          "model ", model_, " is at capacity: ", options_.max_active, " calls running and ",
          options_.queue_capacity, " queued (its queue_capacity); retry later"));
    }
    // Attached before any worker (which needs mu_) can see the task.
    call->Attach(this, task);
    task->admitted = true;
    task->admitted_pos = admitted_.insert(admitted_.end(), task);
  }
  if (wake != nullptr) wake->cv.Signal();
  return absl::OkStatus();
}

// --- Turns -------------------------------------------------------------------

void Executor::RunTurn(const std::shared_ptr<GeneratorTask>& task) {
  {
    MutexLock lock(&task->mu);
    if (task->phase == Phase::kEnded) return;  // stopped while it waited in the run queue
    // kSleeping: its time came (TakeDueLocked).
    if (task->phase != Phase::kPending && task->phase != Phase::kRunnable &&
        task->phase != Phase::kSleeping) {
      LOG(DFATAL) << "RunTurn on a task in phase " << static_cast<int>(task->phase);
      return;
    }
    task->phase = Phase::kRunning;
  }
  // From here this worker owns the task's call, prepared call and generator
  // until it parks or ends the task.
  Call& call = *task->call_;
  // A call whose caller left, or whose deadline passed, while it waited for
  // its turn ends here; if it never started, the model never sees it.
  if (std::optional<EndCause> why = call.StopReason()) {
    call.Cancel(*why);
    End(*task, Ender::kWorker);
    return;
  }
  if (task->generator_ == nullptr) {
    call.Started();
    absl::StatusOr<std::unique_ptr<EncodedGenerator>> started;
    try {
      started = task->prepared_->Start(call.token());
    } catch (...) {
      started = absl::InternalError(absl::StrCat(
          "model ", model_, " threw from Predict: ", DescribeException(std::current_exception())));
    }
    if (started.ok() && *started == nullptr) {
      started = absl::InternalError("Predict returned a null generator");
    }
    if (!started.ok()) {
      call.Fail(started.status());
      End(*task, Ender::kWorker);
      return;
    }
    task->generator_ = *std::move(started);
    // Predict has taken what the prepared call held; keeping it for the
    // call's life would only hold memory (most of a paced stream's life is
    // spent asleep).
    task->prepared_.reset();
  }

  const absl::Time slice_end = absl::Now() + kTurnSlice;
  int steps = 0;
  while (true) {
    // A stop noticed during the last step: start no other.
    if (task->stop_requested.load(std::memory_order_acquire)) break;
    Step<std::string> step = Step<std::string>::Done();
    try {
      step = task->generator_->Next();
    } catch (...) {
      step = Step<std::string>::Error(absl::InternalError(
          absl::StrCat("model ", model_, " threw while generating chunk ", task->steps_, ": ",
                       DescribeException(std::current_exception()))));
    }
    ++task->steps_;
    switch (step.kind()) {
      case Step<std::string>::Kind::kChunk:
        switch (call.Emit(std::move(step.chunk()))) {
          case Call::EmitResult::kMore:
            if (++steps >= kMaxStepsPerTurn || absl::Now() >= slice_end) {
              Park(task, Phase::kRunnable, absl::InfinitePast());
              return;
            }
            continue;
          case Call::EmitResult::kFull:
            Park(task, Phase::kBlocked, absl::InfinitePast());
            return;
          case Call::EmitResult::kStopped:
            break;
        }
        break;
      case Step<std::string>::Kind::kDone:
        call.Complete(step.finish_reason());
        break;
      case Step<std::string>::Kind::kWait:
        if (step.wait_until() <= absl::Now() && ++steps < kMaxStepsPerTurn) {
          // Due already: a pure question first, since no Emit asked it.
          if (std::optional<EndCause> why = call.StopReason()) {
            call.Cancel(*why);
            break;
          }
          continue;
        }
        Park(task, Phase::kSleeping, step.wait_until());
        return;
      case Step<std::string>::Kind::kError:
        call.Fail(step.status());
        break;
    }
    break;  // the call is over: done, failed or stopped
  }
  End(*task, Ender::kWorker);
}

void Executor::Park(const std::shared_ptr<GeneratorTask>& task, Phase phase, absl::Time wake_at) {
  {
    MutexLock lock(&task->mu);
    // A stop that came during the turn (the phase is still kRunning, so
    // StopTask left the ending to this worker).
    if (task->stop_requested.load(std::memory_order_acquire)) {
      phase = Phase::kEnded;
    } else {
      if (phase == Phase::kBlocked && std::exchange(task->resume_requested, false)) {
        phase = Phase::kRunnable;  // the client caught up while the turn ended
      }
      task->phase = phase;
    }
  }
  switch (phase) {
    case Phase::kEnded:
      End(*task, Ender::kWorker);
      break;
    case Phase::kRunnable:
      Schedule(task);
      break;
    case Phase::kSleeping:
      Sleep(task, wake_at);
      break;
    default:
      break;  // kBlocked: ResumeTask schedules it
  }
}

void Executor::Sleep(const std::shared_ptr<GeneratorTask>& task, absl::Time wake_at) {
  IdleWorker* nudge = nullptr;
  {
    MutexLock lock(&mu_);
    const bool earliest = sleeping_.empty() || wake_at < sleeping_.top().wake_at;
    sleeping_.push(Sleeper{wake_at, next_sleeper_seq_++, task});
    if (timer_keeper_ != nullptr) {
      // The keeper waits for a later time: it must look again.
      if (earliest) nudge = timer_keeper_;
    } else if (!idle_.empty()) {
      nudge = idle_.back();  // it takes the keeper's role
    }
    // Otherwise every worker is busy; the first to look for work sees it.
  }
  if (nudge != nullptr) nudge->cv.Signal();
}

void Executor::End(GeneratorTask& task, Ender ender) {
  std::shared_ptr<Call> call;
  std::unique_ptr<EncodedGenerator> generator;
  std::unique_ptr<PreparedCall> prepared;
  {
    MutexLock lock(&task.mu);
    if (task.phase == Phase::kEnded) return;
    if (ender == Ender::kStopper && task.phase == Phase::kRunning) {
      // A worker took the call up after StopTask found it parked: the turn
      // is the worker's, and it sees the stop as soon as the step in flight
      // returns. Ending it here would pull the call from under the turn.
      task.stop_requested.store(true, std::memory_order_release);
      return;
    }
    task.phase = Phase::kEnded;
    call = std::move(task.call_);
    generator = std::move(task.generator_);
    prepared = std::move(task.prepared_);
  }
  // Release first: freeing the model's resources is the point of stopping.
  generator.reset();
  prepared.reset();
  Leave(task);
  call->Released();
}

// --- Notices from calls --------------------------------------------------------

void Executor::StopTask(Task& base) {
  auto& task = static_cast<GeneratorTask&>(base);
  {
    MutexLock lock(&task.mu);
    switch (task.phase) {
      case Phase::kRunning:
        // The worker sees it as soon as the step in flight returns.
        task.stop_requested.store(true, std::memory_order_release);
        return;
      case Phase::kEnded:
        return;
      case Phase::kPending:
      case Phase::kRunnable:
      case Phase::kBlocked:
      case Phase::kSleeping:
        break;  // parked: end it here and now (unless a worker takes it first)
    }
  }
  End(task, Ender::kStopper);
}

void Executor::ResumeTask(Task& base) {
  auto& task = static_cast<GeneratorTask&>(base);
  {
    MutexLock lock(&task.mu);
    if (task.phase == Phase::kRunning) {
      task.resume_requested = true;  // for Park, at the end of this turn
      return;
    }
    if (task.phase != Phase::kBlocked) return;
    task.phase = Phase::kRunnable;
  }
  Schedule(task.shared_from_this());
}

// --- Bookkeeping ---------------------------------------------------------------

bool Executor::WaitForQueued(int n, absl::Time deadline) const {
  MutexLock lock(&mu_);
  while (static_cast<int>(waiting_.size()) < n) {
    if (idle_cv_.WaitWithDeadline(&mu_, deadline)) return static_cast<int>(waiting_.size()) >= n;
  }
  return true;
}

void Executor::Schedule(std::shared_ptr<GeneratorTask> task) {
  IdleWorker* wake = nullptr;
  {
    MutexLock lock(&mu_);
    runnable_.push_back(std::move(task));
    wake = WakeOneLocked();
  }
  // Signalled after unlocking, so that the woken worker does not block at
  // once on the mutex this thread still holds (a second context switch).
  if (wake != nullptr) wake->cv.Signal();
}

Executor::IdleWorker* Executor::WakeOneLocked() {
  if (idle_.empty()) return nullptr;  // a busy worker takes the call after its turn
  // The timer keeper only if no other worker is idle: it keeps its watch.
  auto it = idle_.end() - 1;
  if (*it == timer_keeper_ && idle_.size() > 1) --it;
  IdleWorker* idle = *it;
  idle_.erase(it);
  idle->woken = true;
  return idle;
}

int Executor::TakeDueLocked(absl::Time now) {
  int due = 0;
  while (!sleeping_.empty() && sleeping_.top().wake_at <= now) {
    // Still kSleeping: nothing else moves a sleeping task, and a stopped one
    // (kEnded, or gone) is skipped by RunTurn or here.
    if (std::shared_ptr<GeneratorTask> task = sleeping_.top().task.lock()) {
      runnable_.push_back(std::move(task));
      ++due;
    }
    sleeping_.pop();
  }
  return due;
}

void Executor::WaitForWorkLocked(IdleWorker* idle) {
  idle->woken = false;
  idle_.push_back(idle);
  while (!idle->woken && !stopping_) {
    if (timer_keeper_ == nullptr && !sleeping_.empty()) timer_keeper_ = idle;
    if (timer_keeper_ != idle) {
      idle->cv.Wait(&mu_);
      continue;
    }
    if (sleeping_.empty()) {
      timer_keeper_ = nullptr;
      continue;
    }
    // Late by up to kTimerSlack, never early: what falls due meanwhile is
    // taken by the same wake-up.
    const absl::Time due = sleeping_.top().wake_at + kTimerSlack;
    if (absl::Now() >= due || idle->cv.WaitWithDeadline(&mu_, due)) break;
  }
  if (timer_keeper_ == idle) timer_keeper_ = nullptr;
  if (!idle->woken) {
    // It left the idle stack by itself (its time came, or the executor stops).
    idle_.erase(std::find(idle_.begin(), idle_.end(), idle));
  }
}

void Executor::Leave(GeneratorTask& task) {
  std::shared_ptr<GeneratorTask> admitted_ref, waiting_ref;  // released after unlocking
  IdleWorker* wake = nullptr;
  {
    MutexLock lock(&mu_);
    if (!task.admitted) return;
    task.admitted = false;
    admitted_ref = std::move(*task.admitted_pos);
    admitted_.erase(task.admitted_pos);
    if (task.waiting) {
      task.waiting = false;
      waiting_ref = std::move(*task.waiting_pos);
      waiting_.erase(task.waiting_pos);
    }
    if (task.holds_slot) {
      task.holds_slot = false;
      --active_;
      wake = PromoteLocked();
    }
    idle_cv_.SignalAll();
  }
  if (wake != nullptr) wake->cv.Signal();
}

Executor::IdleWorker* Executor::PromoteLocked() {
  // Calls queue only while every slot is taken, so one freed slot promotes
  // at most one call.
  if (active_ >= options_.max_active || waiting_.empty()) return nullptr;
  std::shared_ptr<GeneratorTask> next = std::move(waiting_.front());
  waiting_.pop_front();
  next->waiting = false;
  next->holds_slot = true;
  ++active_;
  runnable_.push_back(std::move(next));
  return WakeOneLocked();
}

void Executor::CancelAll(EndCause cause) {
  // Queued calls first: cancelling an active call frees its slot, which would
  // otherwise promote (and start) the next queued call.
  std::vector<std::shared_ptr<GeneratorTask>> tasks;
  {
    MutexLock lock(&mu_);
    tasks.assign(waiting_.begin(), waiting_.end());
    for (const std::shared_ptr<GeneratorTask>& task : admitted_) {
      if (!task->waiting) tasks.push_back(task);
    }
  }
  for (const std::shared_ptr<GeneratorTask>& task : tasks) {
    std::shared_ptr<Call> call;
    {
      MutexLock lock(&task->mu);
      call = task->call_;  // null once ended
    }
    if (call != nullptr) call->Cancel(cause);
  }
}

bool Executor::WaitIdle(absl::Time deadline) const {
  MutexLock lock(&mu_);
  while (!admitted_.empty()) {
    if (idle_cv_.WaitWithDeadline(&mu_, deadline)) return admitted_.empty();
  }
  return true;
}

bool Executor::WaitQuiescent(absl::Time deadline) const {
  MutexLock lock(&mu_);
  while (busy_ > 0 || !runnable_.empty()) {
    if (idle_cv_.WaitWithDeadline(&mu_, deadline)) return busy_ == 0 && runnable_.empty();
  }
  return true;
}

bool Executor::Stop(absl::Time deadline) {
  {
    MutexLock lock(&mu_);
    if (workers_.empty()) return true;
    stopping_ = true;
    while (IdleWorker* idle = WakeOneLocked()) idle->cv.Signal();
    while (live_workers_ > 0) {
      if (idle_cv_.WaitWithDeadline(&mu_, deadline)) break;
    }
    if (live_workers_ > 0) {
      LOG(ERROR) << "model " << model_ << ": " << live_workers_
                 << " worker(s) still inside a model step at shutdown; leaving them behind";
      for (std::thread& t : workers_) t.detach();
      workers_.clear();
      return false;
    }
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  return true;
}

int Executor::queued() const {
  MutexLock lock(&mu_);
  return static_cast<int>(waiting_.size());
}

int Executor::active() const {
  MutexLock lock(&mu_);
  return active_;
}

int Executor::busy_workers() const {
  MutexLock lock(&mu_);
  return busy_;
}

void Executor::WorkerLoop(IdleWorker* idle) {
  // "sluice:<model>", cut to the 15 characters Linux keeps: what top -H,
  // perf and /proc/<pid>/task/*/comm show for this model's workers.
  pthread_setname_np(pthread_self(), absl::StrCat("sluice:", model_).substr(0, 15).c_str());
  bool ran_turn = false;
  while (true) {
    std::shared_ptr<GeneratorTask> task;
    // Workers to signal after unlocking: one woken to share the calls that
    // came due, one to keep the time for the sleepers.
    IdleWorker* helper = nullptr;
    IdleWorker* keeper = nullptr;
    {
      MutexLock lock(&mu_);
      if (ran_turn) {
        // The turn just run ends in the same lock hold that looks for the
        // next one: one acquisition per turn, not two.
        --busy_;
        if (busy_ == 0 && runnable_.empty()) idle_cv_.SignalAll();
      }
      while (true) {
        // Sleepers whose time came join the run queue first. When several
        // did, an idle worker shares them.
        if (!sleeping_.empty() && TakeDueLocked(absl::Now()) > 1 && helper == nullptr) {
          helper = WakeOneLocked();
        }
        if (!runnable_.empty() || stopping_) break;
        WaitForWorkLocked(idle);
      }
      if (runnable_.empty()) {
        --live_workers_;
        idle_cv_.SignalAll();
        return;
      }
      task = std::move(runnable_.front());
      runnable_.pop_front();
      ++busy_;
      // This worker may have been the timer keeper: if sleepers wait and
      // another worker is idle, that one keeps the time now.
      if (timer_keeper_ == nullptr && !sleeping_.empty() && !idle_.empty()) {
        keeper = idle_.back();
      }
    }
    if (helper != nullptr) helper->cv.Signal();
    if (keeper != nullptr) keeper->cv.Signal();
    RunTurn(task);
    task.reset();  // may destroy the task: outside the lock
    ran_turn = true;
  }
}

}  // namespace sluice
