#include "models/torch/sampler.h"

#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

SamplingParams Params(double temperature, int64_t top_k = 0, double top_p = 1.0) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  return p;
}

// Draws: how often each id was picked in `n` samples.
std::map<int64_t, int> Draws(Sampler& sampler, const std::vector<double>& logits, int n) {
  std::map<int64_t, int> counts;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<int64_t> id = sampler.Sample(logits);
    EXPECT_TRUE(id.ok()) << id.status();
    ++counts[*id];
  }
  return counts;
}

TEST(SamplerTest, GreedyPicksTheLikeliestAndTheLowestIdOnATie) {
  Sampler sampler(Params(0), /*seed=*/1, /*allowed=*/4, /*also_allowed=*/-1);
  EXPECT_EQ(*sampler.Sample({0.1, 2.0, -1.0, 0.5}), 1);
  EXPECT_EQ(*sampler.Sample({3.0, 1.0, 3.0, 0.5}), 0);
}

TEST(SamplerTest, IdsThatAreNotAllowedAreNeverPicked) {
  // Ids 0..1 and 3 are allowed; 2 (say, a special token) is not, however likely.
  Sampler greedy(Params(0), 1, /*allowed=*/2, /*also_allowed=*/3);
  EXPECT_EQ(*greedy.Sample({0.0, 1.0, 50.0, 2.0}), 3);
  Sampler sampled(Params(1.0), 1, 2, 3);
  const std::map<int64_t, int> counts = Draws(sampled, {0.0, 0.0, 50.0, 0.0}, 300);
  EXPECT_EQ(counts.count(2), 0u);
  EXPECT_EQ(counts.size(), 3u);
}

TEST(SamplerTest, SameSeedSameDrawsOtherSeedOtherDraws) {
  const std::vector<double> logits = {0.3, 0.1, 0.2, 0.0, 0.25, 0.05, 0.15, 0.3};
  auto run = [&](uint64_t seed) {
    Sampler sampler(Params(1.0), seed, 8, -1);
    std::vector<int64_t> ids;
    for (int i = 0; i < 64; ++i) ids.push_back(*sampler.Sample(logits));
    return ids;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(SamplerTest, TemperatureSharpensTheDistribution) {
  const std::vector<double> logits = {1.0, 0.0};  // p(0) = 0.73 at temperature 1
  Sampler warm(Params(1.0), 7, 2, -1);
  Sampler cold(Params(0.1), 7, 2, -1);  // p(0) = 0.99995
  const int kDraws = 4000;
  const int warm_zeros = Draws(warm, logits, kDraws)[0];
  EXPECT_NEAR(warm_zeros, 0.731 * kDraws, 0.05 * kDraws);
  EXPECT_GE(Draws(cold, logits, kDraws)[0], kDraws - 5);
}

TEST(SamplerTest, TopKKeepsOnlyTheKLikeliest) {
  Sampler sampler(Params(1.0, /*top_k=*/2), 3, 5, -1);
  const std::map<int64_t, int> counts = Draws(sampler, {0.0, 1.0, 0.9, 0.8, 0.0}, 500);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_GT(counts.at(1), 0);
  EXPECT_GT(counts.at(2), 0);
}

TEST(SamplerTest, TopPKeepsTheSmallestSetReachingP) {
  // Probabilities 0.5, 0.3, 0.2: top_p 0.7 keeps the first two (0.8 >= 0.7).
  const std::vector<double> logits = {std::log(0.5), std::log(0.3), std::log(0.2)};
  Sampler sampler(Params(1.0, 0, /*top_p=*/0.7), 5, 3, -1);
  const std::map<int64_t, int> counts = Draws(sampler, logits, 4000);
  EXPECT_EQ(counts.count(2), 0u);
  EXPECT_NEAR(counts.at(0), 4000 * 0.5 / 0.8, 4000 * 0.05);
  // A tiny top_p keeps the likeliest alone.
  Sampler narrow(Params(1.0, 0, 1e-9), 5, 3, -1);
  EXPECT_EQ(Draws(narrow, logits, 100)[0], 100);
}

TEST(SamplerTest, NanOrNoFiniteLogitIsAnError) {
  Sampler sampler(Params(1.0), 1, 3, -1);
  absl::StatusOr<int64_t> nan = sampler.Sample({0.0, std::nan(""), 1.0});
  EXPECT_EQ(nan.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(nan.status().message(), HasSubstr("logit for token 1 is NaN"));
  absl::StatusOr<int64_t> none = sampler.Sample({kNegInf, kNegInf, kNegInf});
  EXPECT_THAT(none.status().message(), HasSubstr("no token a finite logit"));
}

}  // namespace
}  // namespace sluice
