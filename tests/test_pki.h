#ifndef SLUICE_TESTS_TEST_PKI_H_
#define SLUICE_TESTS_TEST_PKI_H_

// Throwaway certificates for TLS tests, made at test time with the openssl
// command-line tool.

#include <string>

#include "absl/status/statusor.h"

namespace sluice::testing {

// TestPki: PEM files in a fresh directory under TEST_TMPDIR:
//   a CA, a server certificate it signed (for 127.0.0.1 and localhost), a
//   client certificate it signed, and a "stranger": a client certificate
//   from another CA, which nobody here trusts.
// Keys are P-256; certificates are valid for two days.
struct TestPki {
  std::string ca_cert;
  std::string server_cert, server_key;
  std::string client_cert, client_key;
  std::string stranger_ca_cert;
  std::string stranger_cert, stranger_key;

  // Create: makes all of them; fails with openssl's stderr if it fails.
  static absl::StatusOr<TestPki> Create();
};

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_TEST_PKI_H_
