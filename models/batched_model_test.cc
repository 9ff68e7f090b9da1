#include "models/batched_model.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "models/model_testing.h"

namespace sluice {
namespace {

using ::sluice::testing::IntParam;
using ::sluice::testing::MakeRequest;

struct Countdown {
  int64_t left;
};

// Counter: the header's example, plus counters of what the framework asked.
class Counter final : public BatchedModel<int64_t, int64_t, Countdown> {
 public:
  const ParameterSchema& parameters() const override {
    static const ParameterSchema* const kSchema =
        new ParameterSchema({ParameterSpec::Int64("n", 3, 1, 100, "numbers to count down")});
    return *kSchema;
  }
  absl::StatusOr<int64_t> Decode(const Request& r) const override {
    return r.params().GetInt64("n");
  }
  absl::StatusOr<std::unique_ptr<Countdown>> Start(int64_t n) override {
    if (n == 13) return absl::InvalidArgumentError("unlucky");
    return std::make_unique<Countdown>(Countdown{n});
  }
  absl::Status Step(absl::Span<Countdown* const> batch, absl::Span<SequenceStep<int64_t>> out,
                    const CancellationToken&) override {
    ++steps;
    for (size_t i = 0; i < batch.size(); ++i) {
      out[i].chunk = batch[i]->left--;
      if (batch[i]->left == 0) out[i].finish = FinishReason::kStop;
    }
    return absl::OkStatus();
  }
  void Release(std::unique_ptr<Countdown> state) override { ++released; }
  uint64_t StateBytes(const Countdown& state) const override { return 8 * state.left; }
  absl::StatusOr<std::string> Encode(int64_t v) const override {
    if (v == 7) return absl::InternalError("seven cannot be said");
    return absl::StrCat(v, " ");
  }

  int steps = 0;
  int released = 0;
};

std::unique_ptr<BatchedModelBase::Sequence> Prepare(Counter& model, int64_t n) {
  auto s = model.PrepareSequence("counter", MakeRequest("counter", "", {{"n", IntParam(n)}}));
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

TEST(BatchedModelTest, PrepareValidatesParametersBeforeDecode) {
  Counter model;
  auto s = model.PrepareSequence("counter", MakeRequest("counter", "", {{"n", IntParam(0)}}));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("n"), std::string::npos) << s.status();
}

TEST(BatchedModelTest, StepBatchAdvancesEverySequenceAndEncodes) {
  Counter model;
  auto a = Prepare(model, 1);
  auto b = Prepare(model, 2);
  ASSERT_TRUE(model.StartSequence(*a).ok());
  ASSERT_TRUE(model.StartSequence(*b).ok());
  EXPECT_EQ(model.SequenceBytes(*b), 16u);
  std::vector<BatchedModelBase::Sequence*> batch = {a.get(), b.get()};
  std::vector<BatchedModelBase::EncodedStep> out(2);
  ASSERT_TRUE(model.StepBatch(batch, absl::MakeSpan(out), CancellationToken()).ok());
  EXPECT_EQ(model.steps, 1);
  EXPECT_EQ(out[0].chunk, "1 ");
  EXPECT_EQ(out[0].finish, FinishReason::kStop);
  EXPECT_EQ(out[1].chunk, "2 ");
  EXPECT_FALSE(out[1].finish.has_value());
  model.ReleaseSequence(*a);
  model.ReleaseSequence(*a);  // a second release of the same sequence does nothing
  EXPECT_EQ(model.released, 1);
  EXPECT_EQ(model.SequenceBytes(*a), 0u);
  model.ReleaseSequence(*b);
  EXPECT_EQ(model.released, 2);
}

TEST(BatchedModelTest, EncodeFailureBecomesThatSequencesError) {
  Counter model;
  auto a = Prepare(model, 7);
  auto b = Prepare(model, 8);
  ASSERT_TRUE(model.StartSequence(*a).ok());
  ASSERT_TRUE(model.StartSequence(*b).ok());
  std::vector<BatchedModelBase::Sequence*> batch = {a.get(), b.get()};
  std::vector<BatchedModelBase::EncodedStep> out(2);
  ASSERT_TRUE(model.StepBatch(batch, absl::MakeSpan(out), CancellationToken()).ok());
  EXPECT_EQ(out[0].error.code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(out[0].chunk.has_value());
  EXPECT_TRUE(out[1].error.ok());
  EXPECT_EQ(out[1].chunk, "8 ");
}

TEST(BatchedModelTest, StartErrorLeavesNothingToRelease) {
  Counter model;
  auto a = Prepare(model, 13);
  EXPECT_EQ(model.StartSequence(*a).code(), absl::StatusCode::kInvalidArgument);
  model.ReleaseSequence(*a);
  EXPECT_EQ(model.released, 0);
}

}  // namespace
}  // namespace sluice
