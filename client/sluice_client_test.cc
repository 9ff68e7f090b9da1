#include "client/sluice_client.h"

#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(ParseParameterTest, InfersTypes) {
  auto b = ParseParameter("stream=true");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first, "stream");
  EXPECT_TRUE(b->second.bool_param());
  EXPECT_EQ(ParseParameter("n=42")->second.int64_param(), 42);
  EXPECT_DOUBLE_EQ(ParseParameter("t=0.5")->second.double_param(), 0.5);
  EXPECT_EQ(ParseParameter("s=hello world")->second.string_param(), "hello world");
  EXPECT_EQ(ParseParameter("s=")->second.string_param(), "");
}

TEST(ParseParameterTest, ExplicitTypesWin) {
  EXPECT_DOUBLE_EQ(ParseParameter("t:double=1")->second.double_param(), 1.0);
  EXPECT_EQ(ParseParameter("s:string=5")->second.string_param(), "5");
  EXPECT_EQ(ParseParameter("n:int=-3")->second.int64_param(), -3);
  EXPECT_FALSE(ParseParameter("b:bool=false")->second.bool_param());
}

TEST(ParseParameterTest, MistakesAreExplained) {
  EXPECT_EQ(ParseParameter("novalue").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseParameter("=3").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseParameter("n:int=x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseParameter("n:complex=1").status().code(), absl::StatusCode::kInvalidArgument);
  // A type but no name.
  EXPECT_EQ(ParseParameter(":int=5").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseParameter(":=").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TakeRepeatedFlagTest, CollectsEveryOccurrenceAndLeavesTheRest) {
  std::vector<std::string> args = {"cli", "--param=a=1", "--model=m", "--param",
                                   "b=2", "--stream",    "--param"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  int argc = static_cast<int>(argv.size());
  EXPECT_EQ(TakeRepeatedFlag(&argc, argv.data(), "param"),
            (std::vector<std::string>{"a=1", "b=2"}));
  ASSERT_EQ(argc, 4);
  EXPECT_STREQ(argv[1], "--model=m");
  EXPECT_STREQ(argv[2], "--stream");
  EXPECT_STREQ(argv[3], "--param");  // a trailing flag without a value is left to Abseil
}

}  // namespace
}  // namespace sluice
