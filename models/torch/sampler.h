#ifndef SLUICE_MODELS_TORCH_SAMPLER_H_
#define SLUICE_MODELS_TORCH_SAMPLER_H_

// Choosing the next token from a model's logits, in C++: temperature, top-k
// and top-p (nucleus) sampling with a per-sequence random generator, so that
// a sequence's tokens depend only on its own seed and logits, not on which
// other sequences shared its batch.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "models/rng.h"

namespace sluice {

// SamplingParams: how one sequence picks its tokens.
struct SamplingParams {
  // temperature: 0 picks the likeliest token (ties: the lowest id); above 0
  // samples from softmax(logits / temperature).
  double temperature = 1.0;
  // top_k: sample among the k likeliest tokens only; 0 keeps all.
  int64_t top_k = 0;
  // top_p: sample among the fewest likeliest tokens whose probabilities add
  // up to at least top_p (in 0..1]; 1 keeps all.
  double top_p = 1.0;
};

// Sampler: picks tokens for one sequence. Keeps scratch space between calls;
// not thread-safe (each sequence has its own).
class Sampler {
 public:
  // `allowed`: how many of the lowest ids may be picked; `also_allowed`: one
  // more id (the end-of-text token), or -1. Ids outside both are never
  // picked (a byte-level model's other special tokens).
  Sampler(SamplingParams params, uint64_t seed, int64_t allowed, int64_t also_allowed);

  // Sample: the next token for `logits` (one per id). INTERNAL if no allowed
  // token has a finite logit, or a logit is NaN.
  absl::StatusOr<int64_t> Sample(absl::Span<const double> logits);

 private:
  bool Allowed(int64_t id) const { return id < allowed_ || id == also_allowed_; }

  const SamplingParams params_;
  SplitMix64 rng_;
  const int64_t allowed_;
  const int64_t also_allowed_;
  struct Candidate {
    int64_t id;
    double value;  // logit / temperature, then probability
  };
  std::vector<Candidate> candidates_;
};

}  // namespace sluice

#endif  // SLUICE_MODELS_TORCH_SAMPLER_H_
