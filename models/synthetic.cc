#include "models/synthetic.h"

#include <time.h>

#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace sluice {
namespace {

absl::Duration ThreadCpuTime() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

uint64_t Mix(uint64_t x) {  // SplitMix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

std::optional<uint64_t> BurnCpu(absl::Duration cost, uint64_t seed,
                                const CancellationToken& cancel) {
  uint64_t h = seed;
  if (cost <= absl::ZeroDuration()) return h;
  const absl::Duration until = ThreadCpuTime() + cost;
  while (true) {
    // About 2 µs of work between clock reads and cancellation polls.
    for (int i = 0; i < 512; ++i) h = Mix(h);
    if (ThreadCpuTime() >= until) return h;
    if (cancel.IsCancelled()) return std::nullopt;
  }
}

int64_t SyntheticModel::Stats::started() const { return started_.load(); }
int64_t SyntheticModel::Stats::released() const { return released_.load(); }
int64_t SyntheticModel::Stats::chunks() const { return chunks_.load(); }
int64_t SyntheticModel::Stats::steps_after_cancel() const { return steps_after_cancel_.load(); }
int64_t SyntheticModel::Stats::chunks_after_cancel() const { return chunks_after_cancel_.load(); }
absl::Duration SyntheticModel::Stats::cpu_burned() const {
  return absl::Nanoseconds(cpu_burned_ns_.load());
}

bool SyntheticModel::Stats::WaitFor(const std::function<bool()>& done,
                                    absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  while (!done()) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return done();
  }
  return true;
}

bool SyntheticModel::Stats::WaitForStarted(int64_t n, absl::Duration timeout) const {
  return WaitFor([&] { return started() >= n; }, timeout);
}

bool SyntheticModel::Stats::WaitForReleased(int64_t n, absl::Duration timeout) const {
  return WaitFor([&] { return released() >= n; }, timeout);
}

void SyntheticModel::Stats::Changed() {
  // Taking the lock orders the counter update before a waiter's re-check.
  MutexLock lock(&mu_);
  cv_.SignalAll();
}

class SyntheticModel::Gen final : public Generator<std::string> {
 public:
  Gen(SyntheticModel* model, Input input, CancellationToken cancel)
      : model_(model), input_(std::move(input)), cancel_(std::move(cancel)) {
    model_->stats_.started_.fetch_add(1);
    model_->stats_.Changed();
  }

  ~Gen() override {
    Release release;
    release.request_id = input_.request_id;
    release.chunks = next_index_;
    release.cancelled = cancel_.IsCancelled();
    release.cancel_seen_at = cancel_seen_at_;
    release.released_at = absl::Now();
    if (model_->on_release_) model_->on_release_(release);
    model_->stats_.released_.fetch_add(1);
    model_->stats_.Changed();
  }

  Step<std::string> Next() override {
    Stats& stats = model_->stats_;
    if (cancel_.IsCancelled()) {
      stats.steps_after_cancel_.fetch_add(1);
      cancel_seen_at_ = absl::Now();
    }
    if (next_index_ >= input_.tokens) return Step<std::string>::Done(FinishReason::kLength);
    if (input_.token_interval > absl::ZeroDuration()) {
      const absl::Time now = absl::Now();
      if (next_emit_ == absl::InfinitePast()) next_emit_ = now;  // first chunk at once
      if (now < next_emit_) return Step<std::string>::WaitUntil(next_emit_);
      next_emit_ += input_.token_interval;
    }
    const int64_t index = next_index_;
    if (index == input_.fail_at) {
      return Step<std::string>::Error(absl::InternalError(
          absl::StrCat("synthetic failure at chunk ", index, " (requested by fail_at)")));
    }
    if (index == input_.throw_at) {
      throw std::runtime_error(
          absl::StrCat("synthetic exception at chunk ", index, " (requested by throw_at)"));
    }
    if (index == input_.hang_at) {
      // A step that hangs until somebody gives up on the call (e.g. its deadline).
      while (!cancel_.WaitForCancellation(absl::Seconds(1))) {
      }
    }
    std::optional<uint64_t> hash = static_cast<uint64_t>(index);
    if (input_.token_cost > absl::ZeroDuration()) {
      const absl::Duration cpu_before = ThreadCpuTime();
      hash = BurnCpu(input_.token_cost, static_cast<uint64_t>(index), cancel_);
      stats.cpu_burned_ns_.fetch_add(absl::ToInt64Nanoseconds(ThreadCpuTime() - cpu_before));
    }
    if (!hash.has_value()) {
      // Cancelled mid-step: the chunk is abandoned and never reported.
      if (cancel_seen_at_ == absl::InfinitePast()) cancel_seen_at_ = absl::Now();
      return Step<std::string>::Error(absl::CancelledError("cancelled mid-step"));
    }
    if (cancel_.IsCancelled()) {
      stats.chunks_after_cancel_.fetch_add(1);
      if (cancel_seen_at_ == absl::InfinitePast()) cancel_seen_at_ = absl::Now();
    }
    ++next_index_;
    stats.chunks_.fetch_add(1);
    std::string chunk = absl::StrCat("t", index, " ");
    if (input_.chunk_bytes > 0) chunk.resize(static_cast<size_t>(input_.chunk_bytes), '.');
    return Step<std::string>::Chunk(std::move(chunk));
  }

 private:
  SyntheticModel* const model_;
  const Input input_;
  const CancellationToken cancel_;
  int64_t next_index_ = 0;
  absl::Time next_emit_ = absl::InfinitePast();
  absl::Time cancel_seen_at_ = absl::InfinitePast();
};

std::string SyntheticModel::description() const {
  return "Synthetic load: emits `tokens` chunks, each burning `token_cost_us` of CPU; for "
         "tests and benchmarks.";
}

const ParameterSchema& SyntheticModel::parameters() const {
  static const ParameterSchema* const kSchema = new ParameterSchema({
      ParameterSpec::Int64("tokens", 16, 0, 100'000'000, "number of chunks to emit"),
      ParameterSpec::Int64("token_cost_us", 0, 0, 60'000'000,
                           "CPU time each chunk burns by computation, in microseconds"),
      ParameterSpec::Int64("token_interval_us", 0, 0, 3'600'000'000,
                           "wall-clock gap between chunks, paced without holding a thread"),
      ParameterSpec::Int64("chunk_bytes", 0, 0, 16 << 20,
                           "size of each chunk in bytes; 0 emits \"t<index> \""),
      ParameterSpec::Int64("fail_at", -1, -1, 100'000'000,
                           "fault injection: return INTERNAL at this chunk; -1 never"),
      ParameterSpec::Int64("throw_at", -1, -1, 100'000'000,
                           "fault injection: throw a C++ exception at this chunk; -1 never"),
      ParameterSpec::Int64("hang_at", -1, -1, 100'000'000,
                           "fault injection: block at this chunk until the call is cancelled or "
                           "its deadline passes; -1 never"),
  });
  return *kSchema;
}

absl::StatusOr<SyntheticModel::Input> SyntheticModel::Decode(const Request& request) const {
  const ParameterValues& p = request.params();
  Input input;
  input.request_id = std::string(request.request_id());
  input.tokens = p.GetInt64("tokens");
  input.token_cost = absl::Microseconds(p.GetInt64("token_cost_us"));
  input.token_interval = absl::Microseconds(p.GetInt64("token_interval_us"));
  input.chunk_bytes = p.GetInt64("chunk_bytes");
  input.fail_at = p.GetInt64("fail_at");
  input.throw_at = p.GetInt64("throw_at");
  input.hang_at = p.GetInt64("hang_at");
  if (!allow_faults_ && (p.IsSet("fail_at") || p.IsSet("throw_at") || p.IsSet("hang_at"))) {
    return absl::InvalidArgumentError(
        "fault injection (fail_at, throw_at, hang_at) is disabled on this server; its operator "
        "can allow it with --synthetic_fault_injection");
  }
  return input;
}

absl::StatusOr<std::unique_ptr<Generator<std::string>>> SyntheticModel::Predict(
    Input input, const CancellationToken& cancel) {
  return std::unique_ptr<Generator<std::string>>(
      std::make_unique<Gen>(this, std::move(input), cancel));
}

}  // namespace sluice
