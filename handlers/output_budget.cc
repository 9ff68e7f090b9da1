#include "handlers/output_budget.h"

#include <utility>
#include <vector>

namespace sluice {

void OutputBudget::Remove(uint64_t bytes) {
  // Sequentially consistent, with Wait's increment and check: either this
  // sees the waiter counted, or Wait sees the room made here.
  used_.fetch_sub(bytes);
  if (waiting_count_.load() == 0 || !HasRoom()) return;
  std::deque<std::weak_ptr<BudgetWaiter>> woken;
  {
    MutexLock lock(&mu_);
    if (!HasRoom()) return;
    woken.swap(waiters_);
    waiting_count_.store(0);
  }
  for (const std::weak_ptr<BudgetWaiter>& weak : woken) {
    if (std::shared_ptr<BudgetWaiter> waiter = weak.lock()) waiter->OnBudgetAvailable();
  }
}

bool OutputBudget::Wait(std::weak_ptr<BudgetWaiter> waiter) {
  MutexLock lock(&mu_);
  // Checked under the lock that Remove takes to wake: a Remove that made
  // room either happened before this check or sees this waiter.
  waiting_count_.fetch_add(1);
  if (HasRoom()) {
    waiting_count_.fetch_sub(1);
    return false;
  }
  waiters_.push_back(std::move(waiter));
  return true;
}

int OutputBudget::waiting() const { return waiting_count_.load(std::memory_order_relaxed); }

}  // namespace sluice
