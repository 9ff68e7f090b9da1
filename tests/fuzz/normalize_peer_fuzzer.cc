// Fuzzes PeerProbe::NormalizePeer with arbitrary peer strings (gRPC writes
// them, but a proxy or transport may spell them in ways the server did not
// expect).
//
// Invariants:
//   - An answer is "ip:port" in the canonical spelling the server uses for
//     /proc/net/tcp entries (the two must match for IsConnected to work).
//   - The kernel's spelling of the same connection parses to the same key,
//     both as a tcp line and (IPv4) as an IPv4-mapped tcp6 line.
//   - Normalizing gRPC's own spelling of the answer gives the answer back.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/escaping.h"
#include "glog/logging.h"
#include "service/peer_probe.h"
#include "tests/fuzz/fuzz_util.h"

namespace sluice {
namespace {

constexpr int kLocalPort = 50051;

}  // namespace
}  // namespace sluice

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sluice::PeerProbe;
  const absl::string_view peer(reinterpret_cast<const char*>(data), size);
  const std::optional<std::string> key = PeerProbe::NormalizePeer(peer);
  if (!key.has_value()) return 0;
  const std::string error = sluice::fuzz::CanonicalIpPortError(*key);
  CHECK(error.empty()) << "NormalizePeer(\"" << absl::CHexEscape(peer) << "\") = \""
                       << absl::CHexEscape(*key) << "\": " << error;

  for (bool mapped : {false, true}) {
    const std::string text = sluice::fuzz::KernelTcpText(*key, sluice::kLocalPort, mapped);
    const absl::flat_hash_set<std::string> established =
        PeerProbe::ParseProcNetTcp(text, sluice::kLocalPort);
    CHECK(established.size() == 1 && established.contains(*key))
        << "NormalizePeer(\"" << absl::CHexEscape(peer) << "\") = " << *key
        << " but the kernel's line for it parses differently:\n"
        << text;
  }
  const std::string again = sluice::fuzz::GrpcPeerSpelling(*key);
  CHECK_EQ(PeerProbe::NormalizePeer(again).value_or("<nullopt>"), *key) << "for " << again;
  return 0;
}
