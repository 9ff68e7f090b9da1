#include "handlers/executor.h"

#include <pthread.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace sluice {

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

absl::Status Executor::Admit(const std::shared_ptr<Call>& call) {
  IdleWorker* wake = nullptr;
  {
    MutexLock lock(&mu_);
    Call::ExecutorState& state = call->executor_state_;
    if (active_ < options_.max_active) {
      ++active_;
      state.holds_slot = true;
      runnable_.push_back(call);
      wake = WakeOneLocked();
    } else if (static_cast<int>(waiting_.size()) < options_.queue_capacity) {
      state.waiting = true;
      state.waiting_pos = waiting_.insert(waiting_.end(), call);
      idle_cv_.SignalAll();  // WaitForQueued
    } else {
      return absl::ResourceExhaustedError(absl::StrCat(
          "model ", model_, " is at capacity: ", options_.max_active, " calls running and ",
          options_.queue_capacity, " queued (its queue_capacity); retry later"));
    }
    state.admitted = true;
    state.admitted_pos = admitted_.insert(admitted_.end(), call);
  }
  if (wake != nullptr) wake->cv.Signal();
  return absl::OkStatus();
}

bool Executor::WaitForQueued(int n, absl::Time deadline) const {
  MutexLock lock(&mu_);
  while (static_cast<int>(waiting_.size()) < n) {
    if (idle_cv_.WaitWithDeadline(&mu_, deadline)) return static_cast<int>(waiting_.size()) >= n;
  }
  return true;
}

void Executor::Schedule(std::shared_ptr<Call> call) {
  IdleWorker* wake = nullptr;
  {
    MutexLock lock(&mu_);
    runnable_.push_back(std::move(call));
    wake = WakeOneLocked();
  }
  // Signalled after unlocking, so that the woken worker does not block at
  // once on the mutex this thread still holds (a second context switch).
  if (wake != nullptr) wake->cv.Signal();
}

Executor::IdleWorker* Executor::WakeOneLocked() {
  if (idle_.empty()) return nullptr;  // a busy worker takes the call after its turn
  IdleWorker* idle = idle_.back();
  idle_.pop_back();
  idle->woken = true;
  return idle;
}

void Executor::Leave(Call* call) {
  std::shared_ptr<Call> admitted_ref, waiting_ref;  // released after unlocking
  IdleWorker* wake = nullptr;
  {
    MutexLock lock(&mu_);
    Call::ExecutorState& state = call->executor_state_;
    if (!state.admitted) return;
    state.admitted = false;
    admitted_ref = std::move(*state.admitted_pos);
    admitted_.erase(state.admitted_pos);
    if (state.waiting) {
      state.waiting = false;
      waiting_ref = std::move(*state.waiting_pos);
      waiting_.erase(state.waiting_pos);
    }
    if (state.holds_slot) {
      state.holds_slot = false;
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
  std::shared_ptr<Call> next = std::move(waiting_.front());
  waiting_.pop_front();
  next->executor_state_.waiting = false;
  next->executor_state_.holds_slot = true;
  ++active_;
  runnable_.push_back(std::move(next));
  return WakeOneLocked();
}

void Executor::CancelAll(EndCause cause) {
  // Queued calls first: cancelling an active call frees its slot, which would
  // otherwise promote (and start) the next queued call.
  std::vector<std::shared_ptr<Call>> calls;
  {
    MutexLock lock(&mu_);
    calls.assign(waiting_.begin(), waiting_.end());
    for (const std::shared_ptr<Call>& call : admitted_) {
      if (!call->executor_state_.waiting) calls.push_back(call);
    }
  }
  for (const std::shared_ptr<Call>& call : calls) call->Cancel(cause);
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
    std::shared_ptr<Call> call;
    {
      MutexLock lock(&mu_);
      if (ran_turn) {
        // The turn just run ends in the same lock hold that looks for the
        // next one: one acquisition per turn, not two.
        --busy_;
        if (busy_ == 0 && runnable_.empty()) idle_cv_.SignalAll();
      }
      while (runnable_.empty() && !stopping_) {
        idle->woken = false;
        idle_.push_back(idle);
        while (!idle->woken) idle->cv.Wait(&mu_);
      }
      if (runnable_.empty()) {
        --live_workers_;
        idle_cv_.SignalAll();
        return;
      }
      call = std::move(runnable_.front());
      runnable_.pop_front();
      ++busy_;
    }
    call->RunTurn();
    call.reset();  // may destroy the call: outside the lock
    ran_turn = true;
  }
}

}  // namespace sluice
