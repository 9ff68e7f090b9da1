#include "models/batched_synthetic.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "models/synthetic.h"

namespace sluice {

std::map<int64_t, int64_t> BatchedSyntheticModel::Stats::batch_sizes() const {
  MutexLock lock(&mu_);
  return batch_sizes_;
}

std::vector<std::string> BatchedSyntheticModel::Stats::last_batch() const {
  MutexLock lock(&mu_);
  return last_batch_;
}

bool BatchedSyntheticModel::Stats::WaitFor(const std::function<bool()>& done,
                                           absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  while (!done()) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return done();
  }
  return true;
}

bool BatchedSyntheticModel::Stats::WaitForStarted(int64_t n, absl::Duration timeout) const {
  return WaitFor([&] { return started() >= n; }, timeout);
}

bool BatchedSyntheticModel::Stats::WaitForReleased(int64_t n, absl::Duration timeout) const {
  return WaitFor([&] { return released() >= n; }, timeout);
}

bool BatchedSyntheticModel::Stats::WaitForSteps(int64_t n, absl::Duration timeout) const {
  return WaitFor([&] { return steps() >= n; }, timeout);
}

void BatchedSyntheticModel::Stats::Changed() {
  // Taking the lock orders the counter update before a waiter's re-check.
  MutexLock lock(&mu_);
  cv_.SignalAll();
}

std::string BatchedSyntheticModel::description() const {
  return "Synthetic batched load: sequences share steps; a step of n sequences burns "
         "step_cost_us + n * sequence_cost_us of CPU and gives each one chunk; for tests and "
         "benchmarks of batching.";
}

const ParameterSchema& BatchedSyntheticModel::parameters() const {
  static const ParameterSchema* const kSchema = new ParameterSchema({
      ParameterSpec::Int64("tokens", 16, 0, 100'000'000, "number of chunks to emit"),
      ParameterSpec::Int64("step_cost_us", 0, 0, 60'000'000,
                           "CPU time a step burns once, whatever the batch size (the largest "
                           "asked for in the step), in microseconds"),
      ParameterSpec::Int64("sequence_cost_us", 0, 0, 60'000'000,
                           "CPU time a step burns for each sequence in it, in microseconds"),
      ParameterSpec::Int64("chunk_bytes", 0, 0, 16 << 20,
                           "size of each chunk in bytes; 0 emits \"t<index> \""),
      ParameterSpec::Int64("fail_at", -1, -1, 100'000'000,
                           "fault injection: this sequence fails (INTERNAL) at this chunk; -1 "
                           "never"),
      ParameterSpec::Int64("throw_at", -1, -1, 100'000'000,
                           "fault injection: the whole step throws when this sequence reaches "
                           "this chunk; -1 never"),
      ParameterSpec::Int64("hang_at", -1, -1, 100'000'000,
                           "fault injection: the step blocks at this chunk until nobody in it "
                           "is wanted (its cancellation token); -1 never"),
  });
  return *kSchema;
}

absl::StatusOr<BatchedSyntheticInput> BatchedSyntheticModel::Decode(const Request& request) const {
  const ParameterValues& p = request.params();
  BatchedSyntheticInput input;
  input.request_id = std::string(request.request_id());
  input.tokens = p.GetInt64("tokens");
  input.step_cost = absl::Microseconds(p.GetInt64("step_cost_us"));
  input.sequence_cost = absl::Microseconds(p.GetInt64("sequence_cost_us"));
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

absl::StatusOr<std::unique_ptr<BatchedSyntheticState>> BatchedSyntheticModel::Start(
    BatchedSyntheticInput input) {
  auto state = std::make_unique<BatchedSyntheticState>();
  state->input = std::move(input);
  stats_.started_.fetch_add(1);
  stats_.Changed();
  return state;
}

absl::Status BatchedSyntheticModel::Step(absl::Span<BatchedSyntheticState* const> batch,
                                         absl::Span<SequenceStep<std::string>> out,
                                         const CancellationToken& cancel) {
  const auto n = static_cast<int64_t>(batch.size());
  absl::Duration step_cost;
  absl::Duration sequence_costs;
  {
    MutexLock lock(&stats_.mu_);
    ++stats_.batch_sizes_[n];
    stats_.last_batch_.clear();
    for (const BatchedSyntheticState* s : batch) {
      stats_.last_batch_.push_back(s->input.request_id);
      step_cost = std::max(step_cost, s->input.step_cost);
      sequence_costs += s->input.sequence_cost;
    }
  }
  int64_t largest = stats_.largest_batch_.load();
  while (n > largest && !stats_.largest_batch_.compare_exchange_weak(largest, n)) {
  }
  for (const BatchedSyntheticState* s : batch) {
    if (s->next == s->input.hang_at) {
      // A step that hangs until nobody in it is wanted (every caller left,
      // or the server is shutting down).
      while (!cancel.WaitForCancellation(absl::Seconds(1))) {
      }
    }
    if (s->next == s->input.throw_at) {
      throw std::runtime_error(absl::StrCat("batched_synthetic exception at chunk ", s->next,
                                            " (requested by throw_at)"));
    }
  }
  // The step's real computation: once for the step, then per sequence.
  BurnCpu(step_cost + sequence_costs, static_cast<uint64_t>(n), cancel);
  for (int64_t i = 0; i < n; ++i) {
    BatchedSyntheticState& s = *batch[i];
    ++s.steps;
    if (s.next >= s.input.tokens) {
      out[i].finish = FinishReason::kLength;
      continue;
    }
    if (s.next == s.input.fail_at) {
      out[i].error = absl::InternalError(
          absl::StrCat("batched_synthetic failure at chunk ", s.next, " (requested by fail_at)"));
      continue;
    }
    std::string chunk = absl::StrCat("t", s.next, " ");
    if (s.input.chunk_bytes > 0) chunk.resize(static_cast<size_t>(s.input.chunk_bytes), '.');
    out[i].chunk = std::move(chunk);
    if (++s.next == s.input.tokens) out[i].finish = FinishReason::kLength;
  }
  stats_.sequence_steps_.fetch_add(n);
  stats_.steps_.fetch_add(1);
  stats_.Changed();
  return absl::OkStatus();
}

void BatchedSyntheticModel::Release(std::unique_ptr<BatchedSyntheticState> state) {
  if (on_release_) {
    Released release;
    release.request_id = state->input.request_id;
    release.chunks = state->next;
    release.steps = state->steps;
    release.released_at = absl::Now();
    on_release_(release);
  }
  stats_.released_.fetch_add(1);
  stats_.Changed();
}

uint64_t BatchedSyntheticModel::StateBytes(const BatchedSyntheticState& state) const {
  return sizeof(state) + state.input.request_id.size();
}

}  // namespace sluice
