#ifndef SLUICE_MODELS_SYNC_H_
#define SLUICE_MODELS_SYNC_H_

// Mutex, CondVar and Notification for sluice's own code.
//
// These wrap the standard library's pthread-based primitives rather than
// absl::Mutex: Debian's Abseil is a prebuilt library without ThreadSanitizer
// annotations, so TSan cannot see the ordering absl::Mutex provides and would
// report every access it guards. std::mutex is intercepted by TSan. The
// wrappers keep Abseil's thread-safety annotations (ABSL_GUARDED_BY works with
// them under clang's -Wthread-safety) and its spelling.

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
// Happens-before edges that ThreadSanitizer cannot see because the code that
// provides them is not instrumented (Debian's prebuilt gRPC): the callback
// API orders a reactor's construction and every call into it (StartWrite,
// Finish, ...) before the reactions that follow, and every reaction before
// OnDone. SLUICE_HAPPENS_BEFORE(key) before handing work to gRPC and
// SLUICE_HAPPENS_AFTER(key) at the start of the reaction tell TSan so.
#define SLUICE_HAPPENS_BEFORE(key) __tsan_release(const_cast<void*>(static_cast<const void*>(key)))
#define SLUICE_HAPPENS_AFTER(key) __tsan_acquire(const_cast<void*>(static_cast<const void*>(key)))
#else
#define SLUICE_HAPPENS_BEFORE(key) static_cast<void>(key)
#define SLUICE_HAPPENS_AFTER(key) static_cast<void>(key)
#endif

namespace sluice {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// MutexLock holds `mu` for the lifetime of the object.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// CondVar is a condition variable used with a sluice::Mutex.
class CondVar {
 public:
  // Wait: atomically releases `mu` and blocks until signalled (or spuriously
  // woken); holds `mu` again on return.
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }

  // WaitWithDeadline: as Wait, but returns by `deadline` at the latest.
  // Returns true if the deadline passed.
  bool WaitWithDeadline(Mutex* mu, absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    bool timed_out = false;
    if (deadline == absl::InfiniteFuture()) {
      cv_.wait(lock);
    } else {
      timed_out = cv_.wait_until(lock, absl::ToChronoTime(deadline)) == std::cv_status::timeout;
    }
    lock.release();
    return timed_out;
  }

  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

// Notification is a one-shot event: Notify once, wait any number of times.
class Notification {
 public:
  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
    cv_.SignalAll();
  }

  bool HasBeenNotified() {
    MutexLock lock(&mu_);
    return notified_;
  }

  void WaitForNotification() {
    MutexLock lock(&mu_);
    while (!notified_) cv_.Wait(&mu_);
  }

  // WaitForNotificationWithTimeout: returns true if notified within `timeout`.
  bool WaitForNotificationWithTimeout(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    MutexLock lock(&mu_);
    while (!notified_) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) return notified_;
    }
    return true;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace sluice

#endif  // SLUICE_MODELS_SYNC_H_
