#ifndef SLUICE_MODELS_SYNTHETIC_H_
#define SLUICE_MODELS_SYNTHETIC_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "models/model.h"
#include "models/sync.h"

namespace sluice {

// SyntheticModel: a model for tests and benchmarks whose every cost is a
// parameter. Each chunk burns `token_cost_us` of CPU time by real
// computation (a hash chain, measured on the thread's CPU clock); a gap of
// `token_interval_us` between chunks is paced without holding a thread.
// Faults can be injected at a chosen chunk: an error, an exception, or a step
// that blocks until the call is cancelled.
//
// The model counts what it does (SyntheticModel::Stats), so tests can assert
// on the server-side effect of a client's actions.
struct SyntheticInput {
  std::string request_id;
  int64_t tokens = 0;
  absl::Duration token_cost;
  absl::Duration token_interval;
  int64_t chunk_bytes = 0;
  int64_t fail_at = -1;
  int64_t throw_at = -1;
  int64_t hang_at = -1;
};

class SyntheticModel final : public Model<SyntheticInput, std::string> {
 public:
  using Input = SyntheticInput;

  // Release: what one generator did, reported when it is destroyed.
  struct Release {
    std::string request_id;
    int64_t chunks = 0;         // chunks produced
    bool cancelled = false;     // the token was cancelled when it was released
    absl::Time cancel_seen_at;  // first time a step saw the token cancelled (or InfinitePast)
    absl::Time released_at;
  };

  // Stats: counters over the model's lifetime. Thread-safe.
  class Stats {
   public:
    int64_t started() const;   // generators created (Predict calls)
    int64_t released() const;  // generators destroyed
    int64_t live() const { return started() - released(); }
    int64_t chunks() const;  // chunks produced, over all generators
    // steps_after_cancel: Next calls that began with the token already
    // cancelled. The framework stops calling Next as soon as it learns of a
    // cancel, so this is at most one per call: a cancel that lands between
    // the framework's check and the model's first instruction.
    int64_t steps_after_cancel() const;
    // chunks_after_cancel: chunks completed although the token was cancelled
    // while they were being made (the chunk in flight when the cancel came).
    int64_t chunks_after_cancel() const;
    // cpu_burned: CPU time spent burning token_cost, over all generators.
    absl::Duration cpu_burned() const;

    // WaitForStarted: blocks until at least `n` generators were created.
    bool WaitForStarted(int64_t n, absl::Duration timeout) const;
    // WaitForReleased: blocks until at least `n` generators were destroyed.
    bool WaitForReleased(int64_t n, absl::Duration timeout) const;

   private:
    friend class SyntheticModel;
    bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) const;
    void Changed();

    mutable Mutex mu_;
    mutable CondVar cv_;
    std::atomic<int64_t> started_{0}, released_{0}, chunks_{0};
    std::atomic<int64_t> steps_after_cancel_{0}, chunks_after_cancel_{0};
    std::atomic<int64_t> cpu_burned_ns_{0};
  };

  // `allow_faults`: whether requests may inject faults (fail_at, throw_at,
  // hang_at). A server exposed to untrusted clients should not allow them.
  explicit SyntheticModel(bool allow_faults = true) : allow_faults_(allow_faults) {}

  std::string description() const override;
  const ParameterSchema& parameters() const override;
  absl::StatusOr<Input> Decode(const Request& request) const override;
  absl::StatusOr<std::unique_ptr<Generator<std::string>>> Predict(
      Input input, const CancellationToken& cancel) override;
  absl::StatusOr<std::string> Encode(std::string chunk) const override { return chunk; }

  const Stats& stats() const { return stats_; }

  // set_on_release: called (on the releasing thread) for every generator
  // destroyed. Set before serving; for tests and benchmarks.
  void set_on_release(std::function<void(const Release&)> fn) { on_release_ = std::move(fn); }

 private:
  class Gen;
  const bool allow_faults_;
  Stats stats_;
  std::function<void(const Release&)> on_release_;
};

// BurnCpu: spends `cost` of this thread's CPU time on a hash chain, polling
// `cancel` every few microseconds. Returns the chain's value, or nullopt if
// cancelled before the work was done.
std::optional<uint64_t> BurnCpu(absl::Duration cost, uint64_t seed,
                                const CancellationToken& cancel);

}  // namespace sluice

#endif  // SLUICE_MODELS_SYNTHETIC_H_
