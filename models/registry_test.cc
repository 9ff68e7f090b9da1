#include "models/registry.h"

#include "gtest/gtest.h"
#include "models/echo.h"

namespace sluice {
namespace {

TEST(RegistryTest, FindsRegisteredModelsByName) {
  ModelRegistry registry;
  ASSERT_TRUE(registry.Register("b", std::make_unique<EchoModel>()).ok());
  ASSERT_TRUE(registry.Register("a", std::make_unique<EchoModel>()).ok());
  EXPECT_NE(registry.Find("a"), nullptr);
  EXPECT_EQ(registry.Find("c"), nullptr);
  EXPECT_EQ(registry.names(), (std::vector<std::string>{"a", "b"}));
}

TEST(RegistryTest, DuplicateNameIsAlreadyExists) {
  ModelRegistry registry;
  ASSERT_TRUE(registry.Register("a", std::make_unique<EchoModel>()).ok());
  EXPECT_EQ(registry.Register("a", std::make_unique<EchoModel>()).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(RegistryTest, InvalidNamesAreRejected) {
  ModelRegistry registry;
  EXPECT_EQ(registry.Register("", std::make_unique<EchoModel>()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Register("has space", std::make_unique<EchoModel>()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Register(std::string(65, 'a'), std::make_unique<EchoModel>()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Register("null", nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(registry.empty());
}

}  // namespace
}  // namespace sluice
