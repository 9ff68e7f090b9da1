#include "tests/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace sluice::testing {
namespace {

// Socket: closes the descriptor when it goes.
struct Socket {
  int fd = -1;
  ~Socket() {
    if (fd >= 0) close(fd);
  }
};

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

std::string HttpResponse::Header(absl::string_view name) const {
  for (absl::string_view line : absl::StrSplit(headers, "\r\n")) {
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(line.substr(0, colon)), name)) {
      return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    }
  }
  return "";
}

absl::StatusOr<HttpResponse> HttpRequest(int port, absl::string_view method, absl::string_view path,
                                         absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  Socket socket;
  socket.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (socket.fd < 0) return Errno("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(socket.fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return Errno(absl::StrCat("connect to 127.0.0.1:", port));
  }
  const std::string request =
      absl::StrCat(method, " ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (send(socket.fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return Errno("send");
  }
  std::string response;
  std::vector<char> buffer(16384);
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat("no complete response from port ", port));
    }
    pollfd readable{socket.fd, POLLIN, 0};
    const int ready = poll(&readable, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno != EINTR) return Errno("poll");
    if (ready <= 0) continue;
    const ssize_t n = recv(socket.fd, buffer.data(), buffer.size(), 0);
    if (n < 0) return Errno("recv");
    if (n == 0) break;
    response.append(buffer.data(), static_cast<size_t>(n));
  }

  HttpResponse out;
  const size_t end_of_headers = response.find("\r\n\r\n");
  if (end_of_headers == std::string::npos) {
    return absl::DataLossError(absl::StrCat("response without headers: ", response));
  }
  out.headers = response.substr(0, end_of_headers);
  out.body = response.substr(end_of_headers + 4);
  // "HTTP/1.1 200 OK"
  std::vector<absl::string_view> status_line = absl::StrSplit(out.headers, absl::MaxSplits(' ', 2));
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &out.status)) {
    return absl::DataLossError(absl::StrCat("bad status line in: ", out.headers));
  }
  return out;
}

}  // namespace sluice::testing
