#ifndef SLUICE_MODELS_BATCHED_SYNTHETIC_H_
#define SLUICE_MODELS_BATCHED_SYNTHETIC_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "models/batched_model.h"
#include "models/sync.h"

namespace sluice {

struct BatchedSyntheticInput {
  std::string request_id;
  int64_t tokens = 0;
  absl::Duration step_cost;
  absl::Duration sequence_cost;
  int64_t chunk_bytes = 0;
  int64_t fail_at = -1;
  int64_t throw_at = -1;
  int64_t hang_at = -1;
};

struct BatchedSyntheticState {
  BatchedSyntheticInput input;
  int64_t next = 0;   // chunks produced
  int64_t steps = 0;  // steps this sequence was in
};

// BatchedSyntheticModel: a batched model for tests and benchmarks whose
// costs are parameters, so that the economics of batching can be measured.
// A step of n sequences burns, by real computation on the loop thread,
// `step_cost_us` once (the largest asked for by a sequence in the step) plus
// `sequence_cost_us` for each sequence: step + n * sequence. Each step gives
// each sequence one chunk until it has `tokens`. Faults (behind the same
// flag as synthetic's): fail_at (that sequence fails at that chunk), throw_at
// (the whole step throws when that sequence reaches that chunk), hang_at (the
// step blocks until its cancellation token fires).
//
// The model counts what it does (Stats), so tests can prove that no step
// included a sequence after its caller left.
class BatchedSyntheticModel final
    : public BatchedModel<BatchedSyntheticInput, std::string, BatchedSyntheticState> {
 public:
  // Released: what one sequence did, reported when it is released.
  struct Released {
    std::string request_id;
    int64_t chunks = 0;  // chunks produced
    int64_t steps = 0;   // steps it was in
    absl::Time released_at;
  };

  // Stats: counters over the model's lifetime. Thread-safe.
  class Stats {
   public:
    int64_t started() const { return started_.load(); }
    int64_t released() const { return released_.load(); }
    int64_t live() const { return started() - released(); }
    int64_t steps() const { return steps_.load(); }
    int64_t sequence_steps() const { return sequence_steps_.load(); }
    int64_t largest_batch() const { return largest_batch_.load(); }
    // batch_sizes: how many steps had each batch size.
    std::map<int64_t, int64_t> batch_sizes() const;
    // last_batch: the request ids of the last step, in batch order.
    std::vector<std::string> last_batch() const;
    bool WaitForStarted(int64_t n, absl::Duration timeout) const;
    bool WaitForReleased(int64_t n, absl::Duration timeout) const;
    bool WaitForSteps(int64_t n, absl::Duration timeout) const;

   private:
    friend class BatchedSyntheticModel;
    bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) const;
    void Changed();

    mutable Mutex mu_;
    mutable CondVar cv_;
    std::atomic<int64_t> started_{0}, released_{0}, steps_{0}, sequence_steps_{0};
    std::atomic<int64_t> largest_batch_{0};
    std::map<int64_t, int64_t> batch_sizes_ ABSL_GUARDED_BY(mu_);
    std::vector<std::string> last_batch_ ABSL_GUARDED_BY(mu_);
  };

  // `allow_faults`: whether requests may inject faults (fail_at, throw_at,
  // hang_at). `limits`: the batching limits the model declares.
  explicit BatchedSyntheticModel(bool allow_faults = true, BatchLimits limits = BatchLimits())
      : allow_faults_(allow_faults), limits_(limits) {}

  std::string description() const override;
  const ParameterSchema& parameters() const override;
  BatchLimits limits() const override { return limits_; }
  absl::StatusOr<BatchedSyntheticInput> Decode(const Request& request) const override;
  absl::StatusOr<std::unique_ptr<BatchedSyntheticState>> Start(
      BatchedSyntheticInput input) override;
  absl::Status Step(absl::Span<BatchedSyntheticState* const> batch,
                    absl::Span<SequenceStep<std::string>> out,
                    const CancellationToken& cancel) override;
  void Release(std::unique_ptr<BatchedSyntheticState> state) override;
  uint64_t StateBytes(const BatchedSyntheticState& state) const override;
  absl::StatusOr<std::string> Encode(std::string chunk) const override { return chunk; }

  const Stats& stats() const { return stats_; }

  // set_on_release: called (on the loop thread) for every sequence
  // released. Set before serving; for tests and benchmarks.
  void set_on_release(std::function<void(const Released&)> fn) { on_release_ = std::move(fn); }

 private:
  const bool allow_faults_;
  const BatchLimits limits_;
  Stats stats_;
  std::function<void(const Released&)> on_release_;
};

}  // namespace sluice

#endif  // SLUICE_MODELS_BATCHED_SYNTHETIC_H_
