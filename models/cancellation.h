#ifndef SLUICE_MODELS_CANCELLATION_H_
#define SLUICE_MODELS_CANCELLATION_H_

#include <atomic>
#include <memory>

#include "absl/time/time.h"
#include "models/sync.h"

namespace sluice {

namespace internal {
struct CancellationState;
}  // namespace internal

// CancellationToken tells a model whether anybody still wants its output.
//
// The framework cancels the token the moment it learns a call is no longer
// wanted: the client cancelled, the deadline passed, the connection dropped,
// the client stopped reading, or the server is shutting down. Between chunks
// the framework checks the token itself; a model only needs to poll it inside
// a step that takes long (say, more than a millisecond), and stop early.
//
// Copies share one state. Thread-safe; cheap to copy and to poll.
class CancellationToken {
 public:
  // A token that is never cancelled and has no deadline.
  CancellationToken();

  // IsCancelled: true once the call was cancelled or its deadline has passed.
  // Never returns to false.
  bool IsCancelled() const;

  // deadline: when the call's deadline expires (absl::InfiniteFuture() if it
  // has none). A model may use it to size its work.
  absl::Time deadline() const;

  // WaitForCancellation: blocks until the token is cancelled, the deadline
  // passes or `timeout` elapses, whichever comes first. Returns IsCancelled().
  // For models that wait on something slow outside the CPU; never needed
  // between chunks (see Step::WaitUntil for pacing without blocking).
  bool WaitForCancellation(absl::Duration timeout) const;

 private:
  friend class CancellationSource;
  explicit CancellationToken(std::shared_ptr<internal::CancellationState> state);
  std::shared_ptr<internal::CancellationState> state_;
};

// CancellationSource is the framework's side of a token: it cancels it.
class CancellationSource {
 public:
  explicit CancellationSource(absl::Time deadline = absl::InfiniteFuture());

  // Cancel: cancels every token handed out, wakes their waiters. Idempotent.
  void Cancel();

  // cancelled: whether Cancel was called (ignores the deadline).
  bool cancelled() const;

  CancellationToken token() const { return CancellationToken(state_); }

 private:
  std::shared_ptr<internal::CancellationState> state_;
};

namespace internal {
struct CancellationState {
  explicit CancellationState(absl::Time d) : deadline(d) {}
  const absl::Time deadline;
  std::atomic<bool> cancelled{false};
  Mutex mu;
  CondVar cv;
};
}  // namespace internal

}  // namespace sluice

#endif  // SLUICE_MODELS_CANCELLATION_H_
