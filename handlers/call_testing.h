#ifndef SLUICE_HANDLERS_CALL_TESTING_H_
#define SLUICE_HANDLERS_CALL_TESTING_H_

// Fakes for driving Calls without gRPC: sinks that record what a reactor
// would have sent, and timers fired by hand.

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "handlers/call.h"
#include "handlers/clock.h"
#include "handlers/sinks.h"
#include "handlers/timer_queue.h"
#include "models/sync.h"

namespace sluice::testing {

// FakeStreamSink records writes and the finish. Writes are completed by the
// test (CompleteWrite), or at once by a helper thread in auto mode, the way
// gRPC completes them on its own threads.
class FakeStreamSink final : public StreamSink {
 public:
  // How writes complete: by the test (kManual), on the sink's own thread a
  // moment later (kAuto), or inside StartWrite, before it returns (kInline:
  // what gRPC may do when its transport finishes the write at once and runs
  // the completion on another thread while StartWrite is still returning).
  enum class Completion { kManual, kAuto, kInline };
  explicit FakeStreamSink(bool auto_complete = false)
      : FakeStreamSink(auto_complete ? Completion::kAuto : Completion::kManual) {}
  explicit FakeStreamSink(Completion completion);
  // set_completion: switches between kManual and kInline.
  void set_completion(Completion completion);
  ~FakeStreamSink() override;

  // The call this sink belongs to (for OnWriteDone). Set before admission.
  // Held like gRPC holds a reactor: alive while a write completion runs.
  void set_call(std::shared_ptr<StreamCall> call);
  // set_cancelled: what IsCancelled() reports (as if gRPC knew of a cancel).
  void set_cancelled(bool cancelled) { cancelled_ = cancelled; }

  // StreamSink:
  bool IsCancelled() const override { return cancelled_; }
  void TryCancel() override;
  void StartWrite(const v1::PredictChunk* chunk, bool buffer_hint) override;
  void Finish(const absl::Status& status) override;

  // CompleteWrite: completes the outstanding write with `ok`. Requires one.
  void CompleteWrite(bool ok);

  // Waits; each returns false on timeout.
  bool WaitForWrites(size_t n, absl::Duration timeout = absl::Seconds(10));
  bool WaitForFinish(absl::Duration timeout = absl::Seconds(10));

  std::vector<v1::PredictChunk> written() const;  // completed and outstanding
  // buffer_hints: for each write in written(), whether it carried the hint.
  std::vector<bool> buffer_hints() const;
  bool write_outstanding() const;
  std::optional<absl::Status> finish_status() const;
  int try_cancels() const;
  int finishes() const;
  // max_start_write_depth: the deepest StartWrite was ever entered while
  // another StartWrite of this sink had not returned (1: never nested).
  int max_start_write_depth() const;
  // started_writes_on: whether StartWrite was ever called on thread `id`.
  bool started_writes_on(std::thread::id id) const;

 private:
  void AutoLoop();

  std::atomic<bool> cancelled_{false};
  mutable Mutex mu_;
  Completion completion_ ABSL_GUARDED_BY(mu_);
  mutable CondVar cv_;
  std::shared_ptr<StreamCall> call_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::PredictChunk> written_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> buffer_hints_ ABSL_GUARDED_BY(mu_);
  bool outstanding_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> finish_ ABSL_GUARDED_BY(mu_);
  int finishes_ ABSL_GUARDED_BY(mu_) = 0;
  int try_cancels_ ABSL_GUARDED_BY(mu_) = 0;
  int start_write_depth_ ABSL_GUARDED_BY(mu_) = 0;
  int max_start_write_depth_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::thread::id> start_write_threads_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread auto_thread_;
};

// FakeUnarySink records the finish of a unary call.
class FakeUnarySink final : public UnarySink {
 public:
  void set_cancelled(bool cancelled) { cancelled_ = cancelled; }
  bool IsCancelled() const override { return cancelled_; }
  void TryCancel() override {}
  void Finish(const absl::Status& status, const v1::PredictResponse* response) override;

  bool WaitForFinish(absl::Duration timeout = absl::Seconds(10));
  std::optional<absl::Status> finish_status() const;
  std::optional<v1::PredictResponse> response() const;
  int finishes() const;

 private:
  std::atomic<bool> cancelled_{false};
  mutable Mutex mu_;
  mutable CondVar cv_;
  std::optional<absl::Status> finish_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::PredictResponse> response_ ABSL_GUARDED_BY(mu_);
  int finishes_ ABSL_GUARDED_BY(mu_) = 0;
};

// ManualTimers keeps timers until the test fires them.
class ManualTimers final : public Timers {
 public:
  void RunAt(absl::Time when, std::function<void()> fn) override;
  // FireOnce: runs the timers pending now (not those they add); returns how many.
  int FireOnce();
  size_t pending() const;

 private:
  mutable Mutex mu_;
  std::vector<std::function<void()>> pending_ ABSL_GUARDED_BY(mu_);
};

// FakeClock: a Clock the test sets.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time now = absl::Now()) : now_(now) {}
  absl::Time Now() const override {
    MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

// SummaryCollector gathers CallSummary reports.
class SummaryCollector {
 public:
  Call::EndedCallback callback();
  bool WaitFor(size_t n, absl::Duration timeout = absl::Seconds(10));
  std::vector<CallSummary> summaries() const;

 private:
  mutable Mutex mu_;
  mutable CondVar cv_;
  std::vector<CallSummary> summaries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice::testing

#endif  // SLUICE_HANDLERS_CALL_TESTING_H_
