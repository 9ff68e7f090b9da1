#include "models/torch/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace sluice {

Sampler::Sampler(SamplingParams params, uint64_t seed, int64_t allowed, int64_t also_allowed)
    : params_(params), rng_(seed), allowed_(allowed), also_allowed_(also_allowed) {}

absl::StatusOr<int64_t> Sampler::Sample(absl::Span<const double> logits) {
  const auto n = static_cast<int64_t>(logits.size());
  const bool greedy = params_.temperature == 0;
  // One pass: the likeliest allowed token, and (when sampling) every allowed
  // token with a finite logit as a candidate.
  int64_t best = -1;
  candidates_.clear();
  for (int64_t id = 0; id < n; ++id) {
    if (std::isnan(logits[id])) {
      return absl::InternalError(absl::StrCat("the model's logit for token ", id, " is NaN"));
    }
    if (!Allowed(id) || !(logits[id] > -std::numeric_limits<double>::infinity())) continue;
    if (best < 0 || logits[id] > logits[best]) best = id;
    if (!greedy) candidates_.push_back({id, logits[id] / params_.temperature});
  }
  if (best < 0) return absl::InternalError("the model gave no token a finite logit");
  if (greedy) return best;

  // Candidates in order of preference: the likeliest first, ties by id, so
  // that the choice depends on the logits alone.
  auto likelier = [](const Candidate& a, const Candidate& b) {
    return a.value > b.value || (a.value == b.value && a.id < b.id);
  };
  size_t keep = candidates_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), likelier);
    candidates_.resize(keep);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), likelier);
  }
  // Softmax over what is kept (the first candidate has the largest value).
  const double top = candidates_.front().value;
  double total = 0;
  for (Candidate& c : candidates_) {
    c.value = std::exp(c.value - top);
    total += c.value;
  }
  if (params_.top_p < 1) {
    double mass = 0;
    size_t nucleus = 0;
    while (nucleus < candidates_.size() && mass < params_.top_p * total) {
      mass += candidates_[nucleus++].value;
    }
    candidates_.resize(std::max<size_t>(nucleus, 1));
    total = mass > 0 ? mass : candidates_.front().value;
  }
  double target = rng_.Uniform() * total;
  for (const Candidate& c : candidates_) {
    if (target < c.value) return c.id;
    target -= c.value;
  }
  return candidates_.back().id;  // rounding left a sliver past the last
}

}  // namespace sluice
