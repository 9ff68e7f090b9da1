#ifndef SLUICE_TESTS_FUZZ_FUZZ_UTIL_H_
#define SLUICE_TESTS_FUZZ_FUZZ_UTIL_H_

// Helpers shared by the fuzz targets. Invariant failures use glog's CHECK: it
// prints what was violated and aborts, which libFuzzer records as a crash and
// the replay tests report as a failure.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace sluice {
namespace fuzz {

// FuzzInput: reads typed values off the front of a fuzz input, for targets
// that build structured input (a parameters map, a training setup). Reading
// past the end yields zeros and empty strings, so every input is usable.
class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return size_ == 0; }
  uint8_t Byte();
  bool Bool() { return Byte() & 1; }
  uint64_t Uint64();
  double Double();  // any bit pattern: NaNs, infinities, subnormals included
  // String: a length byte (taken modulo max_len + 1), then that many bytes.
  std::string String(size_t max_len);
  // Pick: an element of a non-empty vector.
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Byte() % v.size()];
  }
  // Rest: every byte not read yet (the input is then empty).
  absl::string_view Rest();

 private:
  const uint8_t* data_;
  size_t size_;
};

// ExpectRejection: aborts unless `status` is the documented answer to bad
// input: INVALID_ARGUMENT with a message that contains every one of `mentions`.
void ExpectRejection(const absl::Status& status, const std::vector<std::string>& mentions,
                     absl::string_view input_for_log);

// CanonicalIpPortError: "" if `s` is "ip:port" as the server writes it (an
// IPv4 address, or an IPv6 one that is not IPv4-mapped, in inet_ntop's
// spelling; a decimal port 0..65535 without leading zeros); else what is wrong.
std::string CanonicalIpPortError(absl::string_view s);

// GrpcPeerSpelling: how gRPC names the peer at canonical `ip_port`:
// "ipv4:1.2.3.4:80" or "ipv6:[::1]:80".
std::string GrpcPeerSpelling(absl::string_view ip_port);

// KernelTcpLines: /proc/net/tcp (for IPv4) or /proc/net/tcp6 text, header
// included, with one ESTABLISHED connection from canonical `ip_port` to
// `local_port`. IPv4 peers also get the IPv4-mapped tcp6 spelling when
// `mapped` is set.
std::string KernelTcpText(absl::string_view ip_port, int local_port, bool mapped);

}  // namespace fuzz
}  // namespace sluice

#endif  // SLUICE_TESTS_FUZZ_FUZZ_UTIL_H_
