// Fuzzes PeerProbe::ParseProcNetTcp with arbitrary /proc/net/tcp{,6} text.
//
// Invariants:
//   - At most one answer per line of text.
//   - Every answer is "ip:port" in the canonical spelling NormalizePeer
//     produces, and NormalizePeer of gRPC's spelling of that peer is the same
//     key (otherwise IsConnected could never find the connection).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/escaping.h"
#include "glog/logging.h"
#include "service/peer_probe.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sluice::PeerProbe;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  // 50051 is 0xC383, the port the seeds use.
  const absl::flat_hash_set<std::string> established = PeerProbe::ParseProcNetTcp(text, 50051);
  const size_t lines = std::count(text.begin(), text.end(), '\n') + 1;
  CHECK_LE(established.size(), lines);
  for (const std::string& key : established) {
    const std::string error = sluice::fuzz::CanonicalIpPortError(key);
    CHECK(error.empty()) << "ParseProcNetTcp gave \"" << absl::CHexEscape(key) << "\": " << error
                         << "\nfrom:\n"
                         << absl::CHexEscape(text);
    const std::string peer = sluice::fuzz::GrpcPeerSpelling(key);
    CHECK_EQ(PeerProbe::NormalizePeer(peer).value_or("<nullopt>"), key)
        << "for the gRPC peer " << peer;
  }
  return 0;
}
