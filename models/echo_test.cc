#include "models/echo.h"

#include "gtest/gtest.h"
#include "models/model_testing.h"

namespace sluice {
namespace {

using ::sluice::testing::IntParam;
using ::sluice::testing::MakeRequest;
using ::sluice::testing::RunModel;

TEST(EchoTest, StreamsInputBackInChunks) {
  EchoModel model;
  absl::StatusOr<testing::ModelRun> run =
      RunModel(model, MakeRequest("echo", "hello world", {{"chunk_bytes", IntParam(4)}}));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->chunks, (std::vector<std::string>{"hell", "o wo", "rld"}));
  EXPECT_EQ(run->finish_reason, FinishReason::kStop);
}

TEST(EchoTest, EmptyInputEndsAtOnce) {
  EchoModel model;
  absl::StatusOr<testing::ModelRun> run = RunModel(model, MakeRequest("echo", ""));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_TRUE(run->chunks.empty());
}

TEST(EchoTest, BinaryInputIsPreserved) {
  EchoModel model;
  const std::string input("\0\xff\n", 3);
  absl::StatusOr<testing::ModelRun> run = RunModel(model, MakeRequest("echo", input));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->Joined(), input);
}

TEST(EchoTest, ZeroChunkBytesIsInvalid) {
  EchoModel model;
  EXPECT_EQ(
      RunModel(model, MakeRequest("echo", "x", {{"chunk_bytes", IntParam(0)}})).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice
