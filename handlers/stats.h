#ifndef SLUICE_HANDLERS_STATS_H_
#define SLUICE_HANDLERS_STATS_H_

// Counters every ended call is classified into, kept in one place so that
// metrics and logs read the same numbers. Lock-free: updated on hot paths.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "models/sync.h"

namespace sluice {

// EndCause: why a call ended. Each call is classified exactly once.
enum class EndCause {
  kCompleted,        // the model finished (OK)
  kClientCancelled,  // the client cancelled the call (RST_STREAM) or a proxy did
  kDeadline,         // the call's deadline passed
  kDisconnected,     // the client's connection closed or its peer vanished (keepalive)
  kStalled,          // the client stopped reading; the server cancelled the stream
  kShutdown,         // the server shut down before the call finished
  kRejected,         // refused at admission: unknown model, bad input, queue full, draining
  kError,            // the model failed (INTERNAL) or its output was too large
};
inline constexpr int kNumEndCauses = 8;

// EndStage: where in its life a call was when it ended.
enum class EndStage {
  kAdmission,  // refused before it was queued
  kQueued,     // admitted, but the model never started on it
  kRunning,    // the model had started generating
};
inline constexpr int kNumEndStages = 3;

enum class Method { kPredict, kPredictStream };
inline constexpr int kNumMethods = 2;

absl::string_view EndCauseName(EndCause cause);           // "completed", "client_cancelled", ...
absl::string_view EndStageName(EndStage stage);           // "admission", "queued", "running"
absl::string_view MethodName(Method method);              // "Predict", "PredictStream"
absl::string_view StatusCodeName(absl::StatusCode code);  // "OK", "CANCELLED", ...

// Histogram: cumulative fixed-bucket histogram of durations, in seconds.
class Histogram {
 public:
  // Bucket upper bounds, seconds: 50 µs .. 10 s, roughly ×2.5 apart.
  static const std::vector<double>& LatencyBounds();

  explicit Histogram(const std::vector<double>& bounds = LatencyBounds());

  void Observe(absl::Duration d);
  // ObserveValue: for histograms of plain numbers (e.g. batch sizes), with
  // bounds in the same unit.
  void ObserveValue(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // cumulative[i]: observations <= bounds[i]
    uint64_t count = 0;                // all observations (the +Inf bucket)
    double sum = 0;                    // seconds
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double> bounds_;
  std::vector<std::atomic<uint64_t>> buckets_;  // per bucket, last is +Inf
  std::atomic<uint64_t> sum_ns_{0};
};

// ModelStats: what happened to one model's calls.
class ModelStats {
 public:
  explicit ModelStats(std::string model) : model_(std::move(model)) {}

  const std::string& model() const { return model_; }

  // RecordStarted: a call of `method` arrived (before admission decides
  // anything). The service ends every started call with one RecordEnded.
  void RecordStarted(Method method) {
    in_flight_[static_cast<int>(method)].fetch_add(1, std::memory_order_relaxed);
    started_total_.fetch_add(1, std::memory_order_relaxed);
  }
  // RecordEnded: classifies one ended call; `code` is the status it finished
  // with. It is no longer in flight.
  void RecordEnded(Method method, EndCause cause, EndStage stage, absl::StatusCode code);

  // in_flight: calls of `method` started and not yet ended (for
  // PredictStream: the open streams, whether queued, generating or rejected
  // a moment from now).
  int64_t in_flight(Method method) const {
    return in_flight_[static_cast<int>(method)].load(std::memory_order_relaxed);
  }

  // started_total: calls that arrived, over the model's lifetime.
  uint64_t started_total() const { return started_total_.load(); }

  uint64_t ended(Method method, EndCause cause, EndStage stage) const;
  uint64_t ended(EndCause cause) const;  // over methods and stages
  uint64_t ended_total() const;
  // WaitForNoneInFlight: blocks until every call that arrived has ended
  // (true) or `timeout` passes (false). For tests and tools.
  bool WaitForNoneInFlight(absl::Duration timeout) const;
  // WaitForEndedTotal: blocks until at least `n` calls have ended (true) or
  // `timeout` passes (false). For tests and tools.
  bool WaitForEndedTotal(uint64_t n, absl::Duration timeout) const;
  uint64_t requests(Method method, absl::StatusCode code) const;

  // Per-chunk accounting, from the worker that produced the chunk.
  void RecordChunk(bool after_cancel) {
    chunks_generated_.fetch_add(1, std::memory_order_relaxed);
    if (after_cancel) chunks_after_cancel_.fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t chunks_generated() const { return chunks_generated_.load(); }
  uint64_t chunks_after_cancel() const { return chunks_after_cancel_.load(); }

  // Latency histograms: admission to first chunk; gap between chunks.
  Histogram& time_to_first_chunk() { return time_to_first_chunk_; }
  Histogram& inter_chunk() { return inter_chunk_; }
  const Histogram& time_to_first_chunk() const { return time_to_first_chunk_; }
  const Histogram& inter_chunk() const { return inter_chunk_; }

 private:
  static constexpr int kNumCodes = 17;
  const std::string model_;
  std::array<std::atomic<uint64_t>, kNumMethods * kNumEndCauses * kNumEndStages> ended_{};
  std::array<std::atomic<uint64_t>, kNumMethods * kNumCodes> requests_{};
  std::array<std::atomic<int64_t>, kNumMethods> in_flight_{};
  std::atomic<uint64_t> started_total_{0};
  std::atomic<uint64_t> chunks_generated_{0};
  std::atomic<uint64_t> chunks_after_cancel_{0};
  Histogram time_to_first_chunk_;
  Histogram inter_chunk_;
  // WaitFor: blocks until `done` (read under mu_ after each ended call) or
  // `timeout`; whether `done` held.
  bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) const;

  mutable Mutex mu_;  // only for the Wait* functions' wake-ups
  mutable CondVar ended_cv_;
};

}  // namespace sluice

#endif  // SLUICE_HANDLERS_STATS_H_
