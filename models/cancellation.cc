#include "models/cancellation.h"

#include <utility>

#include "absl/time/clock.h"

namespace sluice {

CancellationToken::CancellationToken()
    : state_(std::make_shared<internal::CancellationState>(absl::InfiniteFuture())) {}

CancellationToken::CancellationToken(std::shared_ptr<internal::CancellationState> state)
    : state_(std::move(state)) {}

bool CancellationToken::IsCancelled() const {
  if (state_->cancelled.load(std::memory_order_acquire)) return true;
  return state_->deadline != absl::InfiniteFuture() && absl::Now() >= state_->deadline;
}

absl::Time CancellationToken::deadline() const { return state_->deadline; }

bool CancellationToken::WaitForCancellation(absl::Duration timeout) const {
  const absl::Time until = std::min(absl::Now() + timeout, state_->deadline);
  MutexLock lock(&state_->mu);
  while (!state_->cancelled.load(std::memory_order_acquire)) {
    if (state_->cv.WaitWithDeadline(&state_->mu, until)) break;
  }
  return IsCancelled();
}

CancellationSource::CancellationSource(absl::Time deadline)
    : state_(std::make_shared<internal::CancellationState>(deadline)) {}

void CancellationSource::Cancel() {
  MutexLock lock(&state_->mu);
  state_->cancelled.store(true, std::memory_order_release);
  state_->cv.SignalAll();
}

bool CancellationSource::cancelled() const {
  return state_->cancelled.load(std::memory_order_acquire);
}

}  // namespace sluice
