#include "tests/fuzz/fuzz_util.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"

namespace sluice {
namespace fuzz {

uint8_t FuzzInput::Byte() {
  if (size_ == 0) return 0;
  --size_;
  return *data_++;
}

uint64_t FuzzInput::Uint64() {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | Byte();
  return v;
}

double FuzzInput::Double() {
  const uint64_t bits = Uint64();
  double d;
  std::memcpy(&d, &bits, sizeof(d));
  return d;
}

std::string FuzzInput::String(size_t max_len) {
  size_t n = Byte() % (max_len + 1);
  n = std::min(n, size_);
  std::string s(reinterpret_cast<const char*>(data_), n);
  data_ += n;
  size_ -= n;
  return s;
}

absl::string_view FuzzInput::Rest() {
  absl::string_view rest(reinterpret_cast<const char*>(data_), size_);
  data_ += size_;
  size_ = 0;
  return rest;
}

void ExpectRejection(const absl::Status& status, const std::vector<std::string>& mentions,
                     absl::string_view input_for_log) {
  CHECK_EQ(status.code(), absl::StatusCode::kInvalidArgument)
      << status << " for input \"" << absl::CHexEscape(input_for_log) << "\"";
  CHECK(!status.message().empty()) << "rejection without a message";
  for (const std::string& m : mentions) {
    CHECK(absl::StrContains(status.message(), m))
        << "rejection \"" << status.message() << "\" does not mention \"" << m << "\"";
  }
}

std::string CanonicalIpPortError(absl::string_view s) {
  const size_t colon = s.rfind(':');
  if (colon == absl::string_view::npos) return "no ':' before the port";
  const std::string host(s.substr(0, colon));
  const absl::string_view port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5 || (port.size() > 1 && port[0] == '0')) {
    return absl::StrCat("port \"", port, "\" is not a canonical decimal port");
  }
  for (char c : port) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return absl::StrCat("port \"", port, "\" is not decimal");
    }
  }
  int port_value;
  if (!absl::SimpleAtoi(port, &port_value) || port_value > 65535) {
    return absl::StrCat("port ", port, " is out of range");
  }
  char text[INET6_ADDRSTRLEN];
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    inet_ntop(AF_INET, &v4, text, sizeof(text));
  } else if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_V4MAPPED(&v6)) return "an IPv4-mapped address should come out as IPv4";
    inet_ntop(AF_INET6, &v6, text, sizeof(text));
  } else {
    return absl::StrCat("host \"", absl::CHexEscape(host), "\" is not an IP address");
  }
  if (host != text) return absl::StrCat("host ", host, " is not spelled canonically (", text, ")");
  return "";
}

std::string GrpcPeerSpelling(absl::string_view ip_port) {
  const size_t colon = ip_port.rfind(':');
  const absl::string_view host = ip_port.substr(0, colon);
  const absl::string_view port = ip_port.substr(colon + 1);
  if (absl::StrContains(host, ':')) return absl::StrCat("ipv6:[", host, "]:", port);
  return absl::StrCat("ipv4:", host, ":", port);
}

std::string KernelTcpText(absl::string_view ip_port, int local_port, bool mapped) {
  const size_t colon = ip_port.rfind(':');
  const std::string host(ip_port.substr(0, colon));
  int port = 0;
  CHECK(absl::SimpleAtoi(ip_port.substr(colon + 1), &port)) << ip_port;
  // The kernel prints each 32-bit word of the address as it sits in memory,
  // read as a host-order integer, in hex; ports in hex.
  auto words = [](const uint8_t* bytes, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) {
      uint32_t word;
      std::memcpy(&word, bytes + 4 * i, 4);
      absl::StrAppend(&out, absl::StrFormat("%08X", word));
    }
    return out;
  };
  in_addr v4;
  in6_addr v6;
  const char kState[] = " 01 00000000:00000000 00:00000000 00000000     0\n";
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    if (!mapped) {
      return absl::StrFormat(
          "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
          "   0: 0100007F:%04X %s:%04X%s",
          local_port, words(reinterpret_cast<const uint8_t*>(&v4.s_addr), 1), port, kState);
    }
    std::memset(&v6, 0, sizeof(v6));
    v6.s6_addr[10] = v6.s6_addr[11] = 0xff;
    std::memcpy(&v6.s6_addr[12], &v4.s_addr, 4);
  } else {
    CHECK_EQ(inet_pton(AF_INET6, host.c_str(), &v6), 1) << ip_port;
  }
  in6_addr local;
  CHECK_EQ(inet_pton(AF_INET6, "::1", &local), 1);
  return absl::StrFormat(
      "  sl  local_address                         remote_address                        st\n"
      "   0: %s:%04X %s:%04X%s",
      words(local.s6_addr, 4), local_port, words(v6.s6_addr, 4), port, kState);
}

}  // namespace fuzz
}  // namespace sluice
