#ifndef SLUICE_MODELS_TORCH_TORCH_LM_H_
#define SLUICE_MODELS_TORCH_TORCH_LM_H_

// TorchLanguageModel: any language model that follows sluice's TorchScript
// contract (README, "Serving a TorchScript language model"), served as a
// batched model: every step advances all its sequences by one token in one
// call of the model's decode; a long prompt is prefilled a chunk per step,
// so a caller who leaves stops it within one chunk; sampling, stop strings
// and token accounting are done here, in C++.
//
//   sluice::TorchLmOptions options;
//   options.path = "tinylm.pt";
//   registry->Register("tinylm", std::make_unique<sluice::TorchLanguageModel>(
//                                    options, sluice::LoadTorchScriptEngine));

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/batched_model.h"
#include "models/registry.h"
#include "models/sync.h"
#include "models/torch/lm_engine.h"
#include "models/torch/output_text.h"
#include "models/torch/sampler.h"

namespace sluice {

// TorchLmOptions: one TorchScript language model, as a server serves it.
struct TorchLmOptions {
  // path: the TorchScript file (loaded and checked by Setup).
  std::string path;
  // engine: how the model runs (libtorch's threads).
  LmEngineOptions engine;
  // limits: the batching limits the model declares (the operator may
  // override them with --model_options).
  BatchLimits limits;
  // prefill_chunk: prompt tokens run per step. A caller who leaves during a
  // long prompt's prefill stops it within one chunk; the other sequences of
  // the batch wait at most one chunk's time per step.
  int64_t prefill_chunk = 64;
};

// LmPrompt: a decoded request.
struct LmPrompt {
  std::string request_id;
  std::vector<int64_t> tokens;  // what prefill runs: the input's bytes, or end-of-text if empty
  uint64_t input_tokens = 0;    // tokens of the input as sent (for usage)
  int64_t max_tokens = 0;
  SamplingParams sampling;
  uint64_t seed = 0;
  std::vector<std::string> stops;
};

// LmSequence: one sequence's state, from Start to Release.
struct LmSequence {
  LmSequence(LmPrompt p, std::unique_ptr<LmEngine::Cache> c, Sampler s)
      : prompt(std::move(p)),
        cache(std::move(c)),
        sampler(std::move(s)),
        text(std::move(prompt.stops)) {}  // the stops are the output's from here

  LmPrompt prompt;
  std::unique_ptr<LmEngine::Cache> cache;  // freed with the sequence
  Sampler sampler;
  OutputText text;
  int64_t prefilled = 0;      // prompt tokens run so far
  int64_t next_token = -1;    // sampled, to be decoded next
  int64_t generated = 0;      // tokens sampled
  int64_t prefill_steps = 0;  // steps that ran a chunk of its prompt
  int64_t decode_steps = 0;   // steps that decoded a token for it

  // cached: positions the cache holds (decoding starts once the whole
  // prompt is in).
  int64_t cached() const { return prefilled + decode_steps; }
};

class TorchLanguageModel final : public BatchedModel<LmPrompt, std::string, LmSequence> {
 public:
  // Released: what one sequence did, reported when it is released.
  struct Released {
    std::string request_id;
    int64_t prefilled = 0;      // prompt tokens run
    int64_t prefill_steps = 0;  // steps that ran a chunk of it
    int64_t decode_steps = 0;
  };

  // Stats: what the model did. Thread-safe.
  class Stats {
   public:
    int64_t prefill_chunks() const { return prefill_chunks_.load(); }
    int64_t decode_steps() const { return decode_steps_.load(); }
    // last_decode_batch: the request ids of the last decode call, in order.
    std::vector<std::string> last_decode_batch() const;

   private:
    friend class TorchLanguageModel;

    mutable Mutex mu_;
    std::atomic<int64_t> prefill_chunks_{0}, decode_steps_{0};
    std::vector<std::string> last_decode_batch_ ABSL_GUARDED_BY(mu_);
  };

  // `loader` loads the file (LoadTorchScriptEngine, or the plugin's).
  TorchLanguageModel(TorchLmOptions options, LmEngineLoader loader);
  ~TorchLanguageModel() override;

  std::string description() const override;
  const ParameterSchema& parameters() const override { return schema_; }
  BatchLimits limits() const override { return options_.limits; }
  // Setup: loads the file and checks it against the contract.
  absl::Status Setup() override;

  absl::StatusOr<LmPrompt> Decode(const Request& request) const override;
  absl::StatusOr<std::unique_ptr<LmSequence>> Start(LmPrompt prompt) override;
  absl::Status Step(absl::Span<LmSequence* const> batch, absl::Span<SequenceStep<std::string>> out,
                    const CancellationToken& cancel) override;
  void Release(std::unique_ptr<LmSequence> sequence) override;
  uint64_t StateBytes(const LmSequence& sequence) const override;
  absl::StatusOr<std::string> Encode(std::string chunk) const override { return chunk; }

  // After Setup: the model's constants, and the engine (whose own
  // accounting, live_caches() and live_cache_bytes(), tests read).
  const LmEngineInfo& info() const { return engine_->info(); }
  const LmEngine& engine() const { return *engine_; }
  const Stats& stats() const { return stats_; }

  // set_on_release: called (on the loop thread) for every sequence
  // released. Set before serving; for tests and benchmarks.
  void set_on_release(std::function<void(const Released&)> fn) { on_release_ = std::move(fn); }

 private:
  // Next: samples sequence `s`'s next token from `logits` and decides what
  // it sends and whether it is done.
  void Next(LmSequence& s, absl::Span<const double> logits, SequenceStep<std::string>& out) const;

  const TorchLmOptions options_;
  const LmEngineLoader loader_;
  const ParameterSchema schema_;
  std::unique_ptr<LmEngine> engine_;
  Stats stats_;
  std::function<void(const Released&)> on_release_;

  // Step's scratch space (loop thread only).
  std::vector<double> logits_;
  std::vector<size_t> decoding_;
  std::vector<LmEngine::Cache*> caches_;
  std::vector<int64_t> tokens_, positions_;
};

// ParseTorchModels: the NAME=PATH pairs of a --torch_models value
// ("tinylm=models/tinylm/tinylm.pt,other=/srv/other.pt"), in order.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseTorchModels(
    absl::string_view spec);

// RegisterTorchModels: registers a TorchLanguageModel for each NAME=PATH of
// `spec`, with `defaults` for everything but the path.
absl::Status RegisterTorchModels(absl::string_view spec, const TorchLmOptions& defaults,
                                 const LmEngineLoader& loader, ModelRegistry* registry);

}  // namespace sluice

#endif  // SLUICE_MODELS_TORCH_TORCH_LM_H_
