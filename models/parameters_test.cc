#include "models/parameters.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model_testing.h"

namespace sluice {
namespace {

using ::sluice::testing::BoolParam;
using ::sluice::testing::DoubleParam;
using ::sluice::testing::IntParam;
using ::sluice::testing::MakeRequest;
using ::sluice::testing::StringParam;
using ::testing::HasSubstr;

const ParameterSchema& Schema() {
  static const ParameterSchema* schema = new ParameterSchema({
      ParameterSpec::Int64("max_tokens", 16, 1, 4096, "how many"),
      ParameterSpec::Double("temperature", 0.8, 0, 5, "how random"),
      ParameterSpec::Bool("echo", false, "repeat the prompt"),
      ParameterSpec::String("stop", "", 8, "stop text"),
  });
  return *schema;
}

absl::StatusOr<ParameterValues> Parse(std::vector<std::pair<std::string, v1::Parameter>> params) {
  return Schema().Parse("m", MakeRequest("m", "", std::move(params)).parameters());
}

TEST(ParametersTest, DefaultsFillUnsetParameters) {
  absl::StatusOr<ParameterValues> v = Parse({});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->GetInt64("max_tokens"), 16);
  EXPECT_DOUBLE_EQ(v->GetDouble("temperature"), 0.8);
  EXPECT_FALSE(v->GetBool("echo"));
  EXPECT_EQ(v->GetString("stop"), "");
  EXPECT_FALSE(v->IsSet("max_tokens"));
}

TEST(ParametersTest, ValidValuesAreReturned) {
  absl::StatusOr<ParameterValues> v = Parse({{"max_tokens", IntParam(4096)},
                                             {"temperature", DoubleParam(0)},
                                             {"echo", BoolParam(true)},
                                             {"stop", StringParam("\n")}});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->GetInt64("max_tokens"), 4096);
  EXPECT_TRUE(v->IsSet("max_tokens"));
  EXPECT_DOUBLE_EQ(v->GetDouble("temperature"), 0);
  EXPECT_TRUE(v->GetBool("echo"));
  EXPECT_EQ(v->GetString("stop"), "\n");
}

TEST(ParametersTest, OutOfRangeIntegerSaysRangeAndValue) {
  absl::StatusOr<ParameterValues> v = Parse({{"max_tokens", IntParam(0)}});
  ASSERT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(v.status().message(), "parameter max_tokens of model m must be 1..4096, got 0");
}

TEST(ParametersTest, WrongTypeSaysWhichFieldToSet) {
  absl::StatusOr<ParameterValues> v = Parse({{"max_tokens", DoubleParam(3)}});
  ASSERT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(v.status().message(),
            "parameter max_tokens of model m must be set as int64_param, got double_param");
}

TEST(ParametersTest, IntegerIsAcceptedForDouble) {
  absl::StatusOr<ParameterValues> v = Parse({{"temperature", IntParam(2)}});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_DOUBLE_EQ(v->GetDouble("temperature"), 2.0);
}

TEST(ParametersTest, NonFiniteDoubleIsRejected) {
  EXPECT_EQ(Parse({{"temperature", DoubleParam(std::nan(""))}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse({{"temperature", DoubleParam(INFINITY)}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParametersTest, UnsetOneofIsRejected) {
  absl::StatusOr<ParameterValues> v = Parse({{"echo", v1::Parameter()}});
  ASSERT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("got no value"));
}

TEST(ParametersTest, UnknownNameListsKnownOnes) {
  absl::StatusOr<ParameterValues> v = Parse({{"max_tokenz", IntParam(3)}});
  ASSERT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(v.status().message(),
            "model m has no parameter named \"max_tokenz\"; it accepts: max_tokens, temperature, "
            "echo, stop");
}

TEST(ParametersTest, UnknownNameIsEscaped) {
  absl::StatusOr<ParameterValues> v = Parse({{std::string("a\0\n", 3), IntParam(3)}});
  ASSERT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("\"a\\000\\n\""));
}

TEST(ParametersTest, TooLongStringIsRejected) {
  EXPECT_EQ(Parse({{"stop", StringParam("123456789")}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParametersTest, DescriptionShowsRangeAndDefault) {
  EXPECT_EQ(Schema().specs()[0].description(), "how many (1..4096, default 16)");
  EXPECT_EQ(Schema().specs()[0].type_name(), "int64");
}

}  // namespace
}  // namespace sluice
