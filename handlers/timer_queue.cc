#include "handlers/timer_queue.h"

#include <pthread.h>

#include <utility>

#include "absl/time/clock.h"

namespace sluice {

TimerQueue::TimerQueue()
    : thread_([this] {
        pthread_setname_np(pthread_self(), "sluice-timers");
        Loop();
      }) {}

TimerQueue::~TimerQueue() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  thread_.join();
}

void TimerQueue::RunAt(absl::Time when, std::function<void()> fn) {
  MutexLock lock(&mu_);
  const bool earliest = heap_.empty() || when < heap_.top().when;
  heap_.push(Entry{when, next_seq_++, std::move(fn)});
  if (earliest) cv_.Signal();
}

size_t TimerQueue::size() const {
  MutexLock lock(&mu_);
  return heap_.size();
}

void TimerQueue::Loop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    if (heap_.empty()) {
      cv_.Wait(&mu_);
      continue;
    }
    const absl::Time due = heap_.top().when;
    if (absl::Now() < due) {
      cv_.WaitWithDeadline(&mu_, due);
      continue;
    }
    std::function<void()> fn = std::move(const_cast<Entry&>(heap_.top()).fn);
    heap_.pop();
    mu_.Unlock();
    fn();
    fn = nullptr;  // destroy captures outside the lock too
    mu_.Lock();
  }
}

}  // namespace sluice
