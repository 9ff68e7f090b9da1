#include "models/charlm/charlm.h"

#include <limits>

#include "gtest/gtest.h"
#include "models/model_testing.h"

namespace sluice {
namespace {

using ::sluice::testing::DoubleParam;
using ::sluice::testing::IntParam;
using ::sluice::testing::MakeRequest;
using ::sluice::testing::RunModel;

CharLmModel TrainedModel(std::string corpus = std::string(DefaultCharLmCorpus()), int order = 5) {
  CharLmModel model(std::move(corpus), order);
  EXPECT_TRUE(model.Setup().ok());
  return model;
}

TEST(NgramTableTest, LearnsAContinuation) {
  absl::StatusOr<std::unique_ptr<NgramTable>> table =
      NgramTable::Train("the cat sat.\n\nthe cat ran.\n\nthe cat sat.", 4);
  ASSERT_TRUE(table.ok());
  // After "cat s" the only continuation ever seen is 'a'.
  EXPECT_EQ((*table)->Sample("cat s", 1.0, 0.99), 'a');
  // Greedy after "t sat" is '.', and after "sat." the paragraph ends.
  EXPECT_EQ((*table)->Sample("t sat", 0, 0), '.');
  EXPECT_EQ((*table)->Sample(" sat.", 0, 0), NgramTable::kEndOfText);
}

TEST(NgramTableTest, UnseenContextBacksOff) {
  absl::StatusOr<std::unique_ptr<NgramTable>> table = NgramTable::Train("abab", 3);
  ASSERT_TRUE(table.ok());
  const int symbol = (*table)->Sample("zzzzb", 0, 0);  // only "b" is known: next is 'a'
  EXPECT_EQ(symbol, 'a');
}

TEST(NgramTableTest, RejectsEmptyCorpusAndBadOrder) {
  EXPECT_EQ(NgramTable::Train("\n\n  \n", 3).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NgramTable::Train("text", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NgramTable::Train("text", 13).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NgramTableTest, LowTemperatureStaysNearlyGreedy) {
  // After "ab", 'c' was seen 300 times and 'd' once. At temperature 0.005 the
  // odds are 300^200 to 1: every draw must be 'c' (the raw power overflows).
  std::string corpus;
  for (int i = 0; i < 300; ++i) corpus += "abc\n\n";
  corpus += "abd\n";
  absl::StatusOr<std::unique_ptr<NgramTable>> table = NgramTable::Train(corpus, 2);
  ASSERT_TRUE(table.ok());
  for (double uniform : {0.0, 0.5, 0.999}) {
    EXPECT_EQ((*table)->Sample("ab", 0.005, uniform), 'c') << uniform;
    EXPECT_EQ((*table)->Sample("ab", std::numeric_limits<double>::denorm_min(), uniform), 'c')
        << uniform;
  }
  // Temperature 1 still draws the rare one at the top of the range.
  EXPECT_EQ((*table)->Sample("ab", 1.0, 0.999), 'd');
}

TEST(CharLmTest, SameSeedSameText) {
  CharLmModel model = TrainedModel();
  auto request =
      MakeRequest("charlm", "The river", {{"max_tokens", IntParam(200)}, {"seed", IntParam(42)}});
  absl::StatusOr<testing::ModelRun> a = RunModel(model, request);
  absl::StatusOr<testing::ModelRun> b = RunModel(model, request);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(a->chunks.empty());
  EXPECT_EQ(a->Joined(), b->Joined());
}

TEST(CharLmTest, DifferentSeedsDiffer) {
  CharLmModel model = TrainedModel();
  std::set<std::string> texts;
  for (int seed = 0; seed < 5; ++seed) {
    absl::StatusOr<testing::ModelRun> run =
        RunModel(model, MakeRequest("charlm", "The ",
                                    {{"max_tokens", IntParam(100)},
                                     {"seed", IntParam(seed)},
                                     {"temperature", DoubleParam(1.5)}}));
    ASSERT_TRUE(run.ok());
    texts.insert(run->Joined());
  }
  EXPECT_GT(texts.size(), 1u);
}

TEST(CharLmTest, MaxTokensBoundsOutputWithLengthReason) {
  CharLmModel model = TrainedModel();
  absl::StatusOr<testing::ModelRun> run = RunModel(
      model,
      MakeRequest(
          "charlm", "",
          {{"max_tokens", IntParam(7)}, {"seed", IntParam(1)}, {"temperature", DoubleParam(0)}}));
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->chunks.size(), 7u);
  EXPECT_EQ(run->finish_reason, FinishReason::kLength);
}

TEST(CharLmTest, GreedyContinuationFollowsTheCorpus) {
  CharLmModel model = TrainedModel("A sluice is a gate.\n\nThe mill stood by the river.", 6);
  absl::StatusOr<testing::ModelRun> run = RunModel(
      model, MakeRequest("charlm", "A slui",
                         {{"temperature", DoubleParam(0)}, {"max_tokens", IntParam(100)}}));
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->Joined(), "ce is a gate.");
  EXPECT_EQ(run->finish_reason, FinishReason::kStop);
}

TEST(CharLmTest, BadParametersAreInvalidArgument) {
  CharLmModel model = TrainedModel();
  EXPECT_EQ(
      RunModel(model, MakeRequest("charlm", "", {{"max_tokens", IntParam(0)}})).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      RunModel(model, MakeRequest("charlm", "", {{"max_tokens", IntParam(4097)}})).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunModel(model, MakeRequest("charlm", "", {{"temperature", DoubleParam(-1)}}))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CharLmTest, ArbitraryBytesInPromptAreFine) {
  CharLmModel model = TrainedModel();
  absl::StatusOr<testing::ModelRun> run = RunModel(
      model,
      MakeRequest("charlm", std::string("\x02\x00\xff\xfe", 4), {{"max_tokens", IntParam(10)}}));
  EXPECT_TRUE(run.ok()) << run.status();
}

}  // namespace
}  // namespace sluice
