#include "service/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

constexpr size_t kMaxTokenBytes = 4096;
constexpr absl::string_view kScheme = "Bearer ";
constexpr char kHowTo[] =
    "send the metadata \"authorization: Bearer <token>\" with the token this server was "
    "given (sluice_cli: --auth_token_file or $SLUICE_AUTH_TOKEN)";

}  // namespace

BearerAuth::Digest BearerAuth::Sha256(absl::string_view text) {
  Digest digest;
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return digest;
}

absl::StatusOr<BearerAuth> BearerAuth::Create(absl::string_view token) {
  if (token.empty() || token.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the auth token must be 1..", kMaxTokenBytes,
                                                   " characters, got ", token.size()));
  }
  if (absl::Status status = CheckTokenCharacters(token); !status.ok()) return status;
  return BearerAuth(Sha256(token));
}

absl::Status BearerAuth::CheckTokenCharacters(absl::string_view token) {
  for (char c : token) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          "the auth token must be printable ASCII without spaces or control characters");
    }
  }
  return absl::OkStatus();
}

absl::Status BearerAuth::Check(std::optional<absl::string_view> authorization) const {
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError(
        absl::StrCat("this server requires a bearer token and the call carried none; ", kHowTo));
  }
  absl::string_view value = *authorization;
  if (value.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError(
        absl::StrCat("the authorization metadata is not \"Bearer <token>\"; ", kHowTo));
  }
  value.remove_prefix(kScheme.size());
  const Digest presented = Sha256(value);
  if (CRYPTO_memcmp(presented.data(), digest_.data(), digest_.size()) != 0) {
    return absl::UnauthenticatedError(
        "the bearer token is not valid for this server; check that the client has the "
        "server's current token");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LoadAuthToken(const std::string& file) {
  if (file.empty()) {
    const char* env = std::getenv(kAuthTokenEnv);
    return std::string(env == nullptr ? "" : absl::StripAsciiWhitespace(env));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read --auth_token_file ", file, ": ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  const std::string token(absl::StripAsciiWhitespace(text.str()));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--auth_token_file ", file, " is empty"));
  }
  return token;
}

}  // namespace sluice
