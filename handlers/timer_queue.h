#ifndef SLUICE_HANDLERS_TIMER_QUEUE_H_
#define SLUICE_HANDLERS_TIMER_QUEUE_H_

#include <cstdint>
#include <functional>
#include <queue>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "models/sync.h"

namespace sluice {

// Timers runs functions at given times. An interface so that unit tests can
// fire timers by hand.
class Timers {
 public:
  virtual ~Timers() = default;
  // RunAt: runs `fn` at or soon after `when`, on the timer's thread. `fn`
  // must be quick and must not block: it hands work to other threads.
  virtual void RunAt(absl::Time when, std::function<void()> fn) = 0;
};

// TimerQueue: Timers on one dedicated thread and a min-heap. Timers cannot be
// cancelled: a function checks on its own whether it still has work to do
// (sluice's timers hold weak references to calls).
class TimerQueue final : public Timers {
 public:
  TimerQueue();
  // Stops the thread; timers not yet due are dropped without running.
  ~TimerQueue() override;

  void RunAt(absl::Time when, std::function<void()> fn) override;

  // size: timers not yet run.
  size_t size() const;

 private:
  struct Entry {
    absl::Time when;
    uint64_t seq;  // FIFO among equal times
    std::function<void()> fn;
    bool operator>(const Entry& other) const {
      return when != other.when ? when > other.when : seq > other.seq;
    }
  };
  void Loop();

  mutable Mutex mu_;
  CondVar cv_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace sluice

#endif  // SLUICE_HANDLERS_TIMER_QUEUE_H_
