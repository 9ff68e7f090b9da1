#include "service/server_main.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

TEST(ParseModelOptionsTest, OverridesOnlyTheKeysGiven) {
  ExecutorOptions defaults{2, 256, 1024};
  auto parsed =
      ParseModelOptions("synthetic:workers=4,max_active=64; charlm:queue_capacity=8", defaults);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ(parsed->at("synthetic").executor.workers, 4);
  EXPECT_EQ(parsed->at("synthetic").executor.max_active, 64);
  EXPECT_EQ(parsed->at("synthetic").executor.queue_capacity, 1024);
  EXPECT_EQ(parsed->at("charlm").executor.workers, 2);
  EXPECT_EQ(parsed->at("charlm").executor.queue_capacity, 8);
}

TEST(ParseModelOptionsTest, EmptyMeansNoOverrides) {
  auto parsed = ParseModelOptions("", ExecutorOptions{});
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->empty());
}

TEST(ParseModelOptionsTest, MistakesSayWhatIsWrong) {
  EXPECT_THAT(ParseModelOptions("synthetic:workrs=4", {}).status().message(),
              HasSubstr("unknown key \"workrs\""));
  EXPECT_THAT(ParseModelOptions("synthetic:workers=four", {}).status().message(),
              HasSubstr("needs an integer"));
  EXPECT_THAT(ParseModelOptions("synthetic", {}).status().message(), HasSubstr("name:key=value"));
  EXPECT_THAT(ParseModelOptions("a:workers=1;a:workers=2", {}).status().message(),
              HasSubstr("twice"));
}

TEST(ParseModelOptionsTest, TyposAreRefusedNotHalfApplied) {
  // ',' where ';' was meant, a stray '=': nothing of the entry may be dropped.
  EXPECT_THAT(ParseModelOptions("synthetic:workers=4:charlm:workers=1", {}).status().message(),
              HasSubstr("needs an integer"));
  EXPECT_THAT(ParseModelOptions("synthetic:workers=4=8", {}).status().message(),
              HasSubstr("needs an integer"));
  EXPECT_FALSE(ParseModelOptions("a::", {}).ok());
}

}  // namespace
}  // namespace sluice
