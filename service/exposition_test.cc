#include "service/exposition.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Page: the page `build` writes, failing the test if the writer refused it.
template <typename Build>
std::string Page(Build build) {
  ExpositionWriter writer;
  build(writer);
  absl::StatusOr<std::string> page = std::move(writer).Finish();
  EXPECT_TRUE(page.ok()) << page.status();
  return page.ok() ? *page : "";
}

// Mistake: the message of the error `build` makes the writer return.
template <typename Build>
std::string Mistake(Build build) {
  ExpositionWriter writer;
  build(writer);
  absl::StatusOr<std::string> page = std::move(writer).Finish();
  EXPECT_FALSE(page.ok()) << "the writer accepted:\n" << *page;
  return page.ok() ? "" : std::string(page.status().message());
}

std::vector<std::string> Lines(const std::string& page) {
  return absl::StrSplit(page, '\n', absl::SkipEmpty());
}

TEST(ExpositionWriterTest, HelpAndTypeComeOncePerFamilyWithItsSamplesBelow) {
  const std::string page = Page([](ExpositionWriter& w) {
    w.Declare("a_total", MetricType::kCounter, "Things counted.");
    w.Declare("b", MetricType::kGauge, "A level.");
    // Interleaved, as a collector walking model by model adds them.
    w.Add("a_total", {{"model", "x"}}, 1);
    w.Add("b", {{"model", "x"}}, 2);
    w.Add("a_total", {{"model", "y"}}, 3);
    w.Add("b", {{"model", "y"}}, 4);
  });
  EXPECT_THAT(Lines(page), ElementsAre("# HELP a_total Things counted.",  //
                                       "# TYPE a_total counter",          //
                                       "a_total{model=\"x\"} 1",          //
                                       "a_total{model=\"y\"} 3",          //
                                       "# HELP b A level.",               //
                                       "# TYPE b gauge",                  //
                                       "b{model=\"x\"} 2",                //
                                       "b{model=\"y\"} 4"));
}

TEST(ExpositionWriterTest, SampleWithoutLabelsHasNoBraces) {
  EXPECT_THAT(Page([](ExpositionWriter& w) {
                w.Declare("up", MetricType::kGauge, "Up.");
                w.Add("up", {}, 1);
              }),
              HasSubstr("\nup 1\n"));
}

TEST(ExpositionWriterTest, LabelValuesEscapeBackslashQuoteAndNewline) {
  const std::string page = Page([](ExpositionWriter& w) {
    w.Declare("m", MetricType::kGauge, "M.");
    w.Add("m", {{"path", "C:\\dir"}, {"quote", "say \"hi\""}, {"text", "two\nlines"}}, 1);
  });
  EXPECT_THAT(page,
              HasSubstr("m{path=\"C:\\\\dir\",quote=\"say \\\"hi\\\"\",text=\"two\\nlines\"} 1\n"));
}

TEST(ExpositionWriterTest, HelpEscapesBackslashAndNewlineOnly) {
  const std::string page =
      Page([](ExpositionWriter& w) { w.Declare("m", MetricType::kGauge, "a \\ b\n\"c\""); });
  EXPECT_THAT(Lines(page)[0], "# HELP m a \\\\ b\\n\"c\"");
}

TEST(ExpositionWriterTest, NumbersAreWrittenAsTheFormatReadsThem) {
  EXPECT_EQ(ExpositionWriter::FormatValue(0), "0");
  EXPECT_EQ(ExpositionWriter::FormatValue(42), "42");
  EXPECT_EQ(ExpositionWriter::FormatValue(-3), "-3");
  EXPECT_EQ(ExpositionWriter::FormatValue(0.25), "0.25");
  EXPECT_EQ(ExpositionWriter::FormatValue(0.0001), "0.0001");
  EXPECT_EQ(ExpositionWriter::FormatValue(0.00005), "0.00005");
  EXPECT_EQ(ExpositionWriter::FormatValue(1e-7), "1e-07");
  EXPECT_EQ(ExpositionWriter::FormatValue(1e21), "1e+21");
  EXPECT_EQ(ExpositionWriter::FormatValue(9007199254740992.0), "9007199254740992");
  EXPECT_EQ(ExpositionWriter::FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(ExpositionWriter::FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(ExpositionWriter::FormatValue(std::nan("")), "NaN");
  // Shortest text that reads back as the same double.
  EXPECT_EQ(std::stod(ExpositionWriter::FormatValue(0.1 + 0.2)), 0.1 + 0.2);
}

TEST(ExpositionWriterTest, HistogramBucketsAreCumulativeAndEndWithInfEqualToCount) {
  HistogramValue h;
  h.bounds = {0.001, 0.5, 2};
  h.cumulative = {1, 3, 3};
  h.count = 5;
  h.sum = 7.25;
  const std::string page = Page([&](ExpositionWriter& w) {
    w.Declare("lat_seconds", MetricType::kHistogram, "Latency.");
    w.AddHistogram("lat_seconds", {{"model", "m"}}, h);
  });
  EXPECT_THAT(Lines(page), ElementsAre("# HELP lat_seconds Latency.",                     //
                                       "# TYPE lat_seconds histogram",                    //
                                       "lat_seconds_bucket{model=\"m\",le=\"0.001\"} 1",  //
                                       "lat_seconds_bucket{model=\"m\",le=\"0.5\"} 3",    //
                                       "lat_seconds_bucket{model=\"m\",le=\"2\"} 3",      //
                                       "lat_seconds_bucket{model=\"m\",le=\"+Inf\"} 5",   //
                                       "lat_seconds_sum{model=\"m\"} 7.25",               //
                                       "lat_seconds_count{model=\"m\"} 5"));
}

TEST(ExpositionWriterTest, EmptyHistogramStillHasItsInfBucketSumAndCount) {
  HistogramValue h;
  const std::string page = Page([&](ExpositionWriter& w) {
    w.Declare("h", MetricType::kHistogram, "H.");
    w.AddHistogram("h", {}, h);
  });
  EXPECT_THAT(Lines(page), ElementsAre("# HELP h H.", "# TYPE h histogram",
                                       "h_bucket{le=\"+Inf\"} 0", "h_sum 0", "h_count 0"));
}

TEST(ExpositionWriterTest, NamesFollowTheFormatsRules) {
  EXPECT_TRUE(ExpositionWriter::IsValidMetricName("sluice_requests_total"));
  EXPECT_TRUE(ExpositionWriter::IsValidMetricName("job:rate5m"));
  EXPECT_TRUE(ExpositionWriter::IsValidMetricName("_x"));
  EXPECT_FALSE(ExpositionWriter::IsValidMetricName(""));
  EXPECT_FALSE(ExpositionWriter::IsValidMetricName("1x"));
  EXPECT_FALSE(ExpositionWriter::IsValidMetricName("a-b"));
  EXPECT_FALSE(ExpositionWriter::IsValidMetricName("a b"));
  EXPECT_TRUE(ExpositionWriter::IsValidLabelName("model"));
  EXPECT_FALSE(ExpositionWriter::IsValidLabelName("job:x"));
  EXPECT_FALSE(ExpositionWriter::IsValidLabelName("9"));
  EXPECT_FALSE(ExpositionWriter::IsValidLabelName(""));

  EXPECT_THAT(Mistake([](ExpositionWriter& w) { w.Declare("bad-name", MetricType::kGauge, ""); }),
              HasSubstr("metric name \"bad-name\" is not valid"));
  EXPECT_THAT(Mistake([](ExpositionWriter& w) {
                w.Declare("m", MetricType::kGauge, "");
                w.Add("m", {{"bad label", "x"}}, 1);
              }),
              HasSubstr("label name \"bad label\""));
  EXPECT_THAT(Mistake([](ExpositionWriter& w) {
                w.Declare("m", MetricType::kGauge, "");
                w.Add("m", {{"__name__", "x"}}, 1);
              }),
              HasSubstr("\"__name__\""));
}

TEST(ExpositionWriterTest, RefusesWhatAScraperWouldReject) {
  EXPECT_THAT(Mistake([](ExpositionWriter& w) { w.Add("undeclared", {}, 1); }),
              HasSubstr("was not declared"));
  EXPECT_THAT(Mistake([](ExpositionWriter& w) {
                w.Declare("m", MetricType::kGauge, "");
                w.Declare("m", MetricType::kCounter, "");
              }),
              HasSubstr("clashes"));
  EXPECT_THAT(Mistake([](ExpositionWriter& w) {
                w.Declare("h", MetricType::kHistogram, "");
                w.Declare("h_count", MetricType::kGauge, "");
              }),
              HasSubstr("h_count"));
  EXPECT_THAT(Mistake([](ExpositionWriter& w) {
                w.Declare("m", MetricType::kGauge, "");
                w.Add("m", {{"a", "1"}}, 1);
                w.Add("m", {{"a", "1"}}, 2);
              }),
              HasSubstr("added twice"));
  EXPECT_THAT(Mistake([](ExpositionWriter& w) {
                w.Declare("m", MetricType::kGauge, "");
                w.Add("m", {{"a", "1"}, {"a", "2"}}, 1);
              }),
              HasSubstr("appears twice"));
  EXPECT_THAT(Mistake([](ExpositionWriter& w) {
                w.Declare("c_total", MetricType::kCounter, "");
                w.Add("c_total", {}, -1);
              }),
              HasSubstr("must be a number >= 0"));
  EXPECT_THAT(Mistake([](ExpositionWriter& w) {
                w.Declare("h", MetricType::kHistogram, "");
                w.Add("h", {}, 1);
              }),
              HasSubstr("use AddHistogram"));
  EXPECT_THAT(Mistake([](ExpositionWriter& w) {
                w.Declare("h", MetricType::kHistogram, "");
                w.AddHistogram("h", {{"le", "1"}}, HistogramValue{});
              }),
              HasSubstr("reserved"));
}

TEST(ExpositionWriterTest, RefusesHistogramsThatAreNotCumulative) {
  auto with = [](HistogramValue h) {
    return Mistake([h](ExpositionWriter& w) {
      w.Declare("h", MetricType::kHistogram, "");
      w.AddHistogram("h", {}, h);
    });
  };
  EXPECT_THAT(with(HistogramValue{{1, 2}, {2, 1}, 2, 0}), HasSubstr("cumulative"));
  EXPECT_THAT(with(HistogramValue{{1, 2}, {1, 3}, 2, 0}), HasSubstr("at most its count"));
  EXPECT_THAT(with(HistogramValue{{2, 1}, {0, 0}, 0, 0}), HasSubstr("strictly increasing"));
  EXPECT_THAT(with(HistogramValue{{1, std::numeric_limits<double>::infinity()}, {0, 0}, 0, 0}),
              HasSubstr("finite"));
  EXPECT_THAT(with(HistogramValue{{1}, {0, 0}, 0, 0}), HasSubstr("1 bounds but 2 bucket counts"));
}

TEST(ExpositionWriterTest, FirstMistakeIsTheOneReported) {
  EXPECT_THAT(Mistake([](ExpositionWriter& w) {
                w.Add("first", {}, 1);
                w.Add("second", {}, 1);
              }),
              HasSubstr("\"first\""));
}

}  // namespace
}  // namespace sluice
