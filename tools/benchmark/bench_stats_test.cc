#include "tools/benchmark/bench_stats.h"

#include "gtest/gtest.h"

namespace sluice::bench {
namespace {

TEST(PercentileTest, NearestRankOnAnUnsortedSample) {
  const std::vector<double> v = {5, 1, 4, 2, 3};
  EXPECT_EQ(Percentile(v, 0), 1);
  EXPECT_EQ(Percentile(v, 0.2), 1);   // ceil(1.0) = rank 1
  EXPECT_EQ(Percentile(v, 0.21), 2);  // ceil(1.05) = rank 2
  EXPECT_EQ(Percentile(v, 0.5), 3);
  EXPECT_EQ(Percentile(v, 1), 5);
}

TEST(PercentileTest, P99OfAHundredIsTheNinetyNinthAndOfAThousandTheNineHundredNinetieth) {
  std::vector<double> hundred, thousand;
  for (int i = 1; i <= 100; ++i) hundred.push_back(i);
  for (int i = 1; i <= 1000; ++i) thousand.push_back(i);
  EXPECT_EQ(Percentile(hundred, 0.99), 99);
  EXPECT_EQ(Percentile(thousand, 0.99), 990);
  EXPECT_EQ(Percentile(thousand, 0.5), 500);
}

TEST(PercentileTest, EmptyAndOutOfRange) {
  EXPECT_EQ(Percentile({}, 0.5), 0);
  EXPECT_EQ(Percentile({7, 3}, -1), 3);
  EXPECT_EQ(Percentile({7, 3}, 2), 7);
}

TEST(SummarizeTest, OrderStatisticsAndMean) {
  const Summary s = Summarize({4, 1, 3, 2});
  EXPECT_EQ(s.n, 4u);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.p50, 2);
  EXPECT_EQ(s.p99, 4);
  EXPECT_EQ(s.max, 4);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_EQ(Summarize({}).n, 0u);
}

TEST(ConversionTest, DurationsToMillisecondsAndMicroseconds) {
  const std::vector<absl::Duration> d = {absl::Microseconds(1500), absl::Milliseconds(2)};
  EXPECT_EQ(Milliseconds(d), (std::vector<double>{1.5, 2}));
  EXPECT_EQ(Microseconds(d), (std::vector<double>{1500, 2000}));
}

TEST(RatiosTest, PairwiseOverTheCommonLengthSkippingZeroDenominators) {
  EXPECT_EQ(Ratios({2, 3, 9, 5}, {4, 0, 3}), (std::vector<double>{0.5, 3}));
}

TEST(FormatTest, SignificantDigitsWithoutTrailingZeros) {
  EXPECT_EQ(FormatNumber(0), "0");
  EXPECT_EQ(FormatNumber(1234.6), "1235");
  EXPECT_EQ(FormatNumber(12.34), "12.3");
  EXPECT_EQ(FormatNumber(0.012345), "0.0123");
  EXPECT_EQ(FormatNumber(2.0), "2");
  EXPECT_EQ(FormatNumber(0.95, 2), "0.95");
  EXPECT_EQ(FormatNumber(-1.26, 2), "-1.3");
}

TEST(FormatTest, SpreadIsMedianThenRange) {
  EXPECT_EQ(FormatSpread({}), "n/a");
  EXPECT_EQ(FormatSpread({0.9}, "x"), "0.9x");
  EXPECT_EQ(FormatSpread({0.99, 0.91, 0.95}, "x"), "0.95x (0.91x..0.99x)");
}

}  // namespace
}  // namespace sluice::bench
