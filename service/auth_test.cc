#include "service/auth.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

constexpr char kToken[] = "s3cr3t-T0ken_value.42";

BearerAuth Auth() {
  absl::StatusOr<BearerAuth> auth = BearerAuth::Create(kToken);
  EXPECT_TRUE(auth.ok()) << auth.status();
  return *auth;
}

// ExpectRefused: Check refuses `authorization` with UNAUTHENTICATED and a
// message containing `says`.
void ExpectRefused(std::optional<absl::string_view> authorization, absl::string_view says) {
  absl::Status status = Auth().Check(authorization);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated)
      << (authorization ? *authorization : "(none)");
  EXPECT_THAT(status.message(), HasSubstr(says));
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(BearerAuthTest, TheTokenAfterBearerPasses) {
  EXPECT_TRUE(Auth().Check(std::string("Bearer ") + kToken).ok());
  EXPECT_TRUE(Auth().Check(std::string("bearer ") + kToken).ok());
}

TEST(BearerAuthTest, MissingMetadataSaysHowToAuthenticate) {
  ExpectRefused(std::nullopt, "requires a bearer token and the call carried none");
  ExpectRefused(std::nullopt, "authorization: Bearer <token>");
}

TEST(BearerAuthTest, OtherSchemesAreRefused) {
  ExpectRefused(std::string("Basic ") + kToken, "is not \"Bearer <token>\"");
  ExpectRefused(kToken, "is not \"Bearer <token>\"");
  ExpectRefused("Bearer", "is not \"Bearer <token>\"");
}

TEST(BearerAuthTest, WrongTokensAreRefused) {
  const std::string token = kToken;
  for (const std::string& wrong : {std::string(""), token.substr(0, token.size() - 1), token + "x",
                                   token + " ", "X" + token.substr(1), std::string("guess")}) {
    ExpectRefused("Bearer " + wrong, "not valid for this server");
  }
}

TEST(BearerAuthTest, TokensMustBePrintableWithoutSpaces) {
  EXPECT_FALSE(BearerAuth::Create("").ok());
  EXPECT_FALSE(BearerAuth::Create("two words").ok());
  EXPECT_FALSE(BearerAuth::Create("line\nbreak").ok());
  EXPECT_FALSE(BearerAuth::Create(std::string(4097, 'a')).ok());
  EXPECT_TRUE(BearerAuth::Create(std::string(4096, 'a')).ok());
}

TEST(LoadAuthTokenTest, FileWinsOverTheEnvironmentAndLosesItsNewline) {
  setenv(kAuthTokenEnv, "from-env", 1);
  absl::StatusOr<std::string> token = LoadAuthToken(WriteFile("token", "from-file\n"));
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "from-file");
  unsetenv(kAuthTokenEnv);
}

TEST(LoadAuthTokenTest, EnvironmentIsUsedWithoutAFile) {
  setenv(kAuthTokenEnv, "from-env", 1);
  EXPECT_EQ(LoadAuthToken("").value_or("?"), "from-env");
  unsetenv(kAuthTokenEnv);
  EXPECT_EQ(LoadAuthToken("").value_or("?"), "");
}

TEST(LoadAuthTokenTest, UnreadableOrEmptyFileIsAnError) {
  EXPECT_THAT(LoadAuthToken("/nonexistent/token").status().message(),
              HasSubstr("cannot read --auth_token_file /nonexistent/token"));
  EXPECT_THAT(LoadAuthToken(WriteFile("empty", "\n")).status().message(), HasSubstr("is empty"));
}

}  // namespace
}  // namespace sluice
