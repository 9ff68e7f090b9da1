#ifndef SLUICE_HANDLERS_OUTPUT_BUDGET_H_
#define SLUICE_HANDLERS_OUTPUT_BUDGET_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>

#include "models/sync.h"

namespace sluice {

// BudgetWaiter: something paused until the output budget has room.
class BudgetWaiter {
 public:
  virtual ~BudgetWaiter() = default;
  // OnBudgetAvailable: the budget has room again. Called with no lock held.
  virtual void OnBudgetAvailable() = 0;
};

// OutputBudget: a server-wide bound on the encoded output buffered for
// clients, summed over every stream. A stream adds each chunk it buffers and
// removes it once written (or dropped). When the total reaches the limit,
// streams pause their models (backpressure) instead of buffering more, and
// are resumed, oldest first, once the total falls below 7/8 of the limit.
// A paused stream whose client does not read is still ended as stalled by
// its own timeout, which is what frees a budget held by clients that stopped
// reading.
//
// Thread-safe. Add and Remove are two atomic operations on the hot path;
// the lock is taken only to pause and to wake.
class OutputBudget {
 public:
  explicit OutputBudget(uint64_t limit_bytes) : limit_(limit_bytes) {}

  // Add: `bytes` more are buffered. Returns false if the budget is spent
  // (the total reached the limit): the caller should pause and Wait.
  bool Add(uint64_t bytes) {
    return used_.fetch_add(bytes, std::memory_order_relaxed) + bytes < limit_;
  }

  // Remove: `bytes` buffered earlier are gone (written or dropped). Wakes
  // the waiters once the total is below the resume mark. No lock may be
  // held by the caller (waiters are called back inline).
  void Remove(uint64_t bytes);

  // Wait: registers `waiter` to be called back once the budget has room.
  // Returns false, registering nothing, if it has room already (the caller
  // goes on at once).
  bool Wait(std::weak_ptr<BudgetWaiter> waiter);

  uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t limit() const { return limit_; }
  // waiting: waiters registered and not yet called back.
  int waiting() const;

 private:
  bool HasRoom() const { return used_.load() < limit_ - limit_ / 8; }

  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
  std::atomic<int> waiting_count_{0};
  mutable Mutex mu_;
  std::deque<std::weak_ptr<BudgetWaiter>> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_HANDLERS_OUTPUT_BUDGET_H_
