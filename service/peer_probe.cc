#include "service/peer_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace sluice {
namespace {

constexpr absl::string_view kEstablished = "01";

// ParseIp: a numeric IPv4 or IPv6 address, as its family and its 4 or 16
// bytes in network order; false (and `family` untouched) if it is neither.
bool ParseIp(const std::string& text, int* family, unsigned char ip[16]) {
  if (inet_pton(AF_INET, text.c_str(), ip) == 1) {
    *family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), ip) == 1) {
    *family = AF_INET6;
    return true;
  }
  return false;
}

// ParseKey: "ip:port" (as NormalizePeer makes it) as an address and port.
bool ParseKey(const std::string& key, int* family, unsigned char ip[16], uint16_t* port) {
  const size_t colon = key.rfind(':');
  if (colon == std::string::npos) return false;
  uint32_t p;
  if (!absl::SimpleAtoi(absl::string_view(key).substr(colon + 1), &p) || p > 0xFFFF) return false;
  *port = static_cast<uint16_t>(p);
  return ParseIp(key.substr(0, colon), family, ip);
}

enum class Lookup { kEstablished, kOtherState, kNoSocket, kError };

// LookupTcp: asks sock_diag, over the netlink socket `fd`, for the TCP
// socket with exactly these endpoints. When the connection is gone the
// kernel's lookup finds the listening socket instead (same local port), which
// counts as kOtherState. An exact lookup gets exactly one reply, so one
// socket serves any number of lookups in turn.
Lookup LookupTcp(int fd, int family, const unsigned char* local_ip, uint16_t local_port,
                 const unsigned char* remote_ip, uint16_t remote_port) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message{};
  message.header.nlmsg_len = sizeof(message);
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST;
  message.request.sdiag_family = static_cast<uint8_t>(family);
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = ~0u;
  message.request.id.idiag_sport = htons(local_port);
  message.request.id.idiag_dport = htons(remote_port);
  const size_t length = family == AF_INET ? 4 : 16;
  std::memcpy(message.request.id.idiag_src, local_ip, length);
  std::memcpy(message.request.id.idiag_dst, remote_ip, length);
  message.request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  message.request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  Lookup result = Lookup::kError;
  if (sendto(fd, &message, sizeof(message), 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) == static_cast<ssize_t>(sizeof(message))) {
    alignas(nlmsghdr) char buffer[8192];
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    const auto* reply = reinterpret_cast<const nlmsghdr*>(buffer);
    if (n >= static_cast<ssize_t>(sizeof(nlmsghdr)) && NLMSG_OK(reply, static_cast<size_t>(n))) {
      if (reply->nlmsg_type == NLMSG_ERROR) {
        const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(reply));
        result = error->error == -ENOENT ? Lookup::kNoSocket : Lookup::kError;
      } else if (reply->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
        const auto* socket_info = static_cast<const inet_diag_msg*>(NLMSG_DATA(reply));
        result = socket_info->idiag_state == TCP_ESTABLISHED ? Lookup::kEstablished
                                                             : Lookup::kOtherState;
      }
    }
  }
  return result;
}

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

void PeerProbe::set_local_address(absl::string_view host, int port) {
  auto local = std::make_shared<Local>();
  local->port = static_cast<uint16_t>(port);
  FindLocalAddresses(host, &local->addresses);
  MutexLock lock(&local_mu_);
  local_ = std::move(local);
}

std::shared_ptr<const PeerProbe::Local> PeerProbe::local() const {
  MutexLock lock(&local_mu_);
  return local_;
}

void PeerProbe::FindLocalAddresses(absl::string_view host, std::vector<Address>* out) {
  std::string name(host);
  if (!name.empty() && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);
  Address address;
  ParseIp(name, &address.family, address.ip);
  const bool wildcard =
      address.family == 0 ||
      (address.family == AF_INET && std::memcmp(address.ip, "\0\0\0\0", 4) == 0) ||
      (address.family == AF_INET6 &&
       IN6_IS_ADDR_UNSPECIFIED(reinterpret_cast<in6_addr*>(address.ip)));
  if (!wildcard) {
    out->push_back(address);
    return;
  }
  // Any of this machine's addresses: the ones it has now.
  ifaddrs* interfaces = nullptr;
  if (getifaddrs(&interfaces) != 0) return;
  for (const ifaddrs* i = interfaces; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    Address a;
    if (i->ifa_addr->sa_family == AF_INET) {
      a.family = AF_INET;
      std::memcpy(a.ip, &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      a.family = AF_INET6;
      std::memcpy(a.ip, &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    out->push_back(a);
  }
  freeifaddrs(interfaces);
}

std::optional<bool> PeerProbe::AskNetlink(const std::string& peer_key) const {
  int family;
  unsigned char remote[16] = {};
  uint16_t remote_port;
  if (!ParseKey(peer_key, &family, remote, &remote_port)) return std::nullopt;
  const std::shared_ptr<const Local> local = this->local();
  const int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return std::nullopt;
  // Gone, if the kernel was asked about the connection from every address it
  // could have come to; no answer if there was no address to ask about.
  std::optional<bool> answer;
  for (const Address& address : local->addresses) {
    if (address.family != family) continue;
    const Lookup lookup = LookupTcp(fd, family, address.ip, local->port, remote, remote_port);
    if (lookup == Lookup::kEstablished) {
      answer = true;
      break;
    }
    if (lookup == Lookup::kError) {
      answer = std::nullopt;
      break;
    }
    answer = false;  // closing, or gone (the listener answered, or none did)
  }
  close(fd);
  return answer;
}

std::optional<bool> PeerProbe::IsConnected(absl::string_view peer, absl::Time since) {
  std::optional<std::string> key = NormalizePeer(peer);
  if (!key.has_value()) return std::nullopt;
  if (std::optional<bool> answer = AskNetlink(*key); answer.has_value()) return answer;
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
  const int port = local()->port;
  established_ = ParseProcNetTcp(text, port);
  for (const std::string& entry : ParseProcNetTcp(ReadWholeFile("/proc/net/tcp6"), port)) {
    established_.insert(entry);
  }
  taken_at_ = now;
  return true;
}

}  // namespace sluice
