#include "handlers/stats.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace sluice {

absl::string_view EndCauseName(EndCause cause) {
  switch (cause) {
    case EndCause::kCompleted:
      return "completed";
    case EndCause::kClientCancelled:
      return "client_cancelled";
    case EndCause::kDeadline:
      return "deadline";
    case EndCause::kDisconnected:
      return "disconnected";
    case EndCause::kStalled:
      return "stalled";
    case EndCause::kShutdown:
      return "shutdown";
    case EndCause::kRejected:
      return "rejected";
    case EndCause::kError:
      return "error";
  }
  return "unknown";
}

absl::string_view EndStageName(EndStage stage) {
  switch (stage) {
    case EndStage::kAdmission:
      return "admission";
    case EndStage::kQueued:
      return "queued";
    case EndStage::kRunning:
      return "running";
  }
  return "unknown";
}

absl::string_view MethodName(Method method) {
  return method == Method::kPredict ? "Predict" : "PredictStream";
}

absl::string_view StatusCodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "OK";
    case absl::StatusCode::kCancelled:
      return "CANCELLED";
    case absl::StatusCode::kUnknown:
      return "UNKNOWN";
    case absl::StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case absl::StatusCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case absl::StatusCode::kNotFound:
      return "NOT_FOUND";
    case absl::StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case absl::StatusCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case absl::StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case absl::StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case absl::StatusCode::kAborted:
      return "ABORTED";
    case absl::StatusCode::kOutOfRange:
      return "OUT_OF_RANGE";
    case absl::StatusCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case absl::StatusCode::kInternal:
      return "INTERNAL";
    case absl::StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case absl::StatusCode::kDataLoss:
      return "DATA_LOSS";
    case absl::StatusCode::kUnauthenticated:
      return "UNAUTHENTICATED";
    default:
      break;
  }
  return "UNKNOWN";
}

const std::vector<double>& Histogram::LatencyBounds() {
  static const std::vector<double>* const kBounds =
      new std::vector<double>{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                              0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
  return *kBounds;
}

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), buckets_(bounds.size() + 1) {}

void Histogram::Observe(absl::Duration d) {
  const double seconds = absl::ToDoubleSeconds(d);
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(0, absl::ToInt64Nanoseconds(d))),
                    std::memory_order_relaxed);
}

void Histogram::ObserveValue(double value) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  // The sum is kept in billionths of the unit (nanoseconds for durations).
  sum_ns_.fetch_add(static_cast<uint64_t>(std::max(0.0, value) * 1e9), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running + buckets_.back().load(std::memory_order_relaxed);
  s.sum = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

void ModelStats::RecordEnded(Method method, EndCause cause, EndStage stage, absl::StatusCode code) {
  const int m = static_cast<int>(method);
  ended_[(m * kNumEndCauses + static_cast<int>(cause)) * kNumEndStages + static_cast<int>(stage)]
      .fetch_add(1, std::memory_order_relaxed);
  int c = static_cast<int>(code);
  if (c < 0 || c >= kNumCodes) c = static_cast<int>(absl::StatusCode::kUnknown);
  requests_[m * kNumCodes + c].fetch_add(1, std::memory_order_relaxed);
  in_flight_[m].fetch_sub(1, std::memory_order_relaxed);
  MutexLock lock(&mu_);
  ended_cv_.SignalAll();
}

uint64_t ModelStats::ended(EndCause cause) const {
  uint64_t total = 0;
  for (int m = 0; m < kNumMethods; ++m) {
    for (int s = 0; s < kNumEndStages; ++s) {
      total += ended(static_cast<Method>(m), cause, static_cast<EndStage>(s));
    }
  }
  return total;
}

bool ModelStats::WaitForNoneInFlight(absl::Duration timeout) const {
  return WaitFor(
      [&] {
        for (int m = 0; m < kNumMethods; ++m) {
          if (in_flight(static_cast<Method>(m)) != 0) return false;
        }
        return true;
      },
      timeout);
}

bool ModelStats::WaitForEndedTotal(uint64_t n, absl::Duration timeout) const {
  return WaitFor([&] { return ended_total() >= n; }, timeout);
}

bool ModelStats::WaitFor(const std::function<bool()>& done, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  while (!done()) {
    if (ended_cv_.WaitWithDeadline(&mu_, deadline)) return done();
  }
  return true;
}

uint64_t ModelStats::ended(Method method, EndCause cause, EndStage stage) const {
  return ended_[(static_cast<int>(method) * kNumEndCauses + static_cast<int>(cause)) *
                    kNumEndStages +
                static_cast<int>(stage)]
      .load();
}

uint64_t ModelStats::ended_total() const {
  uint64_t total = 0;
  for (const auto& n : ended_) total += n.load();
  return total;
}

uint64_t ModelStats::requests(Method method, absl::StatusCode code) const {
  const int c = static_cast<int>(code);
  if (c < 0 || c >= kNumCodes) return 0;
  return requests_[static_cast<int>(method) * kNumCodes + c].load();
}

}  // namespace sluice
