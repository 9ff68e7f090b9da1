#ifndef SLUICE_TESTS_HTTP_CLIENT_H_
#define SLUICE_TESTS_HTTP_CLIENT_H_

// A tiny HTTP/1.0 client over a loopback socket, for scraping /metrics in
// tests without a dependency.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sluice::testing {

struct HttpResponse {
  int status = 0;       // e.g. 200
  std::string headers;  // the header lines, as received
  std::string body;
  // Header: the value of header `name` (case-insensitive), or "".
  std::string Header(absl::string_view name) const;
};

// HttpRequest: `method` `path` to 127.0.0.1:`port`, the whole response (the
// server closes the connection after an HTTP/1.0 response). Fails if the
// connection is refused or the response has not ended within `timeout`.
absl::StatusOr<HttpResponse> HttpRequest(int port, absl::string_view method, absl::string_view path,
                                         absl::Duration timeout = absl::Seconds(10));

inline absl::StatusOr<HttpResponse> HttpGet(int port, absl::string_view path) {
  return HttpRequest(port, "GET", path);
}

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_HTTP_CLIENT_H_
