#include "service/peer_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace sluice {
namespace {

constexpr absl::string_view kEstablished = "01";

// Decodes a /proc/net/tcp address ("0100007F:C350", or 32 hex digits for
// IPv6) into "ip:port"; IPv4-mapped IPv6 addresses come out as IPv4.
std::optional<std::string> DecodeAddress(absl::string_view hex_addr) {
  std::vector<absl::string_view> parts = absl::StrSplit(hex_addr, ':');
  if (parts.size() != 2) return std::nullopt;
  uint32_t port;
  if (!absl::SimpleHexAtoi(parts[1], &port) || port > 0xFFFF) return std::nullopt;
  const absl::string_view ip = parts[0];
  char text[INET6_ADDRSTRLEN];
  if (ip.size() == 8) {
    uint32_t word;
    if (!absl::SimpleHexAtoi(ip, &word)) return std::nullopt;
    in_addr addr;
    addr.s_addr = word;  // the kernel prints the address word in host order
    if (inet_ntop(AF_INET, &addr, text, sizeof(text)) == nullptr) return std::nullopt;
    return absl::StrCat(text, ":", port);
  }
  if (ip.size() == 32) {
    in6_addr addr;
    for (int i = 0; i < 4; ++i) {
      uint32_t word;
      if (!absl::SimpleHexAtoi(ip.substr(i * 8, 8), &word)) return std::nullopt;
      std::memcpy(&addr.s6_addr[i * 4], &word, 4);
    }
    if (IN6_IS_ADDR_V4MAPPED(&addr)) {
      in_addr v4;
      std::memcpy(&v4.s_addr, &addr.s6_addr[12], 4);
      if (inet_ntop(AF_INET, &v4, text, sizeof(text)) == nullptr) return std::nullopt;
    } else if (inet_ntop(AF_INET6, &addr, text, sizeof(text)) == nullptr) {
      return std::nullopt;
    }
    return absl::StrCat(text, ":", port);
  }
  return std::nullopt;
}

// Reads a /proc file with large read() calls: the kernel renders a table
// like /proc/net/tcp afresh for each read(), so a table that changes between
// small reads can lose rows; large reads keep that window small.
std::string ReadWholeFile(const char* path) {
  std::string text;
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  constexpr size_t kChunk = 1 << 20;
  while (true) {
    const size_t size = text.size();
    text.resize(size + kChunk);
    const ssize_t n = read(fd, text.data() + size, kChunk);
    if (n <= 0) {
      text.resize(size);
      break;
    }
    text.resize(size + static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

}  // namespace

absl::flat_hash_set<std::string> PeerProbe::ParseProcNetTcp(absl::string_view text,
                                                            int local_port) {
  absl::flat_hash_set<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::StripAsciiWhitespace(line), ' ', absl::SkipEmpty());
    // sl local_address rem_address st ...
    if (fields.size() < 4 || fields[3] != kEstablished) continue;
    std::optional<std::string> local = DecodeAddress(fields[1]);
    std::optional<std::string> remote = DecodeAddress(fields[2]);
    if (!local.has_value() || !remote.has_value()) continue;
    if (!absl::EndsWith(*local, absl::StrCat(":", local_port))) continue;
    out.insert(*std::move(remote));
  }
  return out;
}

std::optional<std::string> PeerProbe::NormalizePeer(absl::string_view peer) {
  // The host is re-spelled by inet_ntop and the port re-printed, as
  // DecodeAddress spells the kernel's, so that equal connections compare equal
  // and anything that is not ip:port has no answer.
  char host[INET6_ADDRSTRLEN];
  std::string p;
  absl::string_view port;
  if (absl::ConsumePrefix(&peer, "ipv4:")) {
    const size_t colon = peer.rfind(':');
    if (colon == absl::string_view::npos) return std::nullopt;
    in_addr addr;
    if (inet_pton(AF_INET, std::string(peer.substr(0, colon)).c_str(), &addr) != 1) {
      return std::nullopt;
    }
    inet_ntop(AF_INET, &addr, host, sizeof(host));
    port = peer.substr(colon + 1);
  } else if (absl::ConsumePrefix(&peer, "ipv6:")) {
    p = std::string(peer);
    // gRPC writes the brackets either plainly or percent-encoded.
    for (auto [from, to] : {std::pair<const char*, const char*>{"%5B", "["}, {"%5D", "]"}}) {
      for (size_t at; (at = p.find(from)) != std::string::npos;) p.replace(at, 3, to);
    }
    const size_t close = p.rfind(']');
    if (p.empty() || p[0] != '[' || close == std::string::npos) return std::nullopt;
    in6_addr addr;
    const std::string ip = p.substr(1, close - 1);
    if (inet_pton(AF_INET6, ip.c_str(), &addr) != 1) return std::nullopt;
    if (IN6_IS_ADDR_V4MAPPED(&addr)) {
      in_addr v4;
      std::memcpy(&v4.s_addr, &addr.s6_addr[12], 4);
      inet_ntop(AF_INET, &v4, host, sizeof(host));
    } else {
      inet_ntop(AF_INET6, &addr, host, sizeof(host));
    }
    port = absl::string_view(p).substr(close + 1);
    if (!absl::ConsumePrefix(&port, ":")) return std::nullopt;
  } else {
    return std::nullopt;
  }
  uint32_t port_number;
  if (port.empty() || !std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port, &port_number) || port_number > 0xFFFF) {
    return std::nullopt;
  }
  return absl::StrCat(host, ":", port_number);
}

std::optional<bool> PeerProbe::IsConnected(absl::string_view peer, absl::Time since) {
  std::optional<std::string> key = NormalizePeer(peer);
  if (!key.has_value()) return std::nullopt;
  MutexLock lock(&mu_);
  // One reading serves every cancel that happened before it was taken, so a
  // storm of cancels costs a handful of readings, not one each.
  if (taken_at_ < since && !ReadTableLocked()) return std::nullopt;
  if (established_.contains(*key)) return true;
  // "Gone" is the rarer answer, and a table that changed while it was read
  // may have lost the row: confirm it with a reading of its own.
  if (!ReadTableLocked()) return std::nullopt;
  return established_.contains(*key);
}

bool PeerProbe::ReadTableLocked() {
  const absl::Time now = absl::Now();
  const std::string text = ReadWholeFile("/proc/net/tcp");
  if (text.empty()) return false;
  const int port = local_port_.load();
  established_ = ParseProcNetTcp(text, port);
  for (const std::string& entry : ParseProcNetTcp(ReadWholeFile("/proc/net/tcp6"), port)) {
    established_.insert(entry);
  }
  taken_at_ = now;
  return true;
}

}  // namespace sluice
