#ifndef SLUICE_SERVICE_AUTH_H_
#define SLUICE_SERVICE_AUTH_H_

// Bearer-token authentication: one shared secret, sent by clients as the
// metadata "authorization: Bearer <token>".

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sluice {

// kAuthTokenEnv: the environment variable a token may come from.
inline constexpr char kAuthTokenEnv[] = "SLUICE_AUTH_TOKEN";

// BearerAuth checks calls against one token. Immutable; thread-safe.
class BearerAuth {
 public:
  // Create: InvalidArgument unless `token` is 1..4096 printable ASCII
  // characters without spaces (what fits in an HTTP/2 header value as is).
  static absl::StatusOr<BearerAuth> Create(absl::string_view token);

  // CheckTokenCharacters: InvalidArgument unless every character of `token`
  // is printable ASCII other than a space; for clients, before they send it.
  static absl::Status CheckTokenCharacters(absl::string_view token);

  // Check: OK if `authorization` (the call's "authorization" metadata, or
  // nullopt if it had none) is "Bearer <the token>" (the scheme's case does
  // not matter); UNAUTHENTICATED saying what was wrong otherwise.
  //
  // The presented token is compared by its SHA-256 digest in constant time:
  // how long the check takes does not depend on how much of it matched, nor
  // on the real token's length.
  absl::Status Check(std::optional<absl::string_view> authorization) const;

 private:
  using Digest = std::array<uint8_t, 32>;
  explicit BearerAuth(const Digest& digest) : digest_(digest) {}
  static Digest Sha256(absl::string_view text);

  Digest digest_;
};

// LoadAuthToken: the token from `file` if it is set (surrounding whitespace,
// e.g. a final newline, stripped), else from $SLUICE_AUTH_TOKEN, else ""
// (no authentication). Fails if the file cannot be read or is empty.
absl::StatusOr<std::string> LoadAuthToken(const std::string& file);

}  // namespace sluice

#endif  // SLUICE_SERVICE_AUTH_H_
