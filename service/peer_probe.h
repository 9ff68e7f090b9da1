#ifndef SLUICE_SERVICE_PEER_PROBE_H_
#define SLUICE_SERVICE_PEER_PROBE_H_

#include <atomic>
#include <optional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "models/sync.h"

namespace sluice {

// PeerProbe tells a client's cancel from a lost connection.
//
// gRPC's C++ server API reports both the same way (OnCancel, a failed write):
// an HTTP/2 RST_STREAM from a client that cancelled, and the end of the TCP
// connection (the client process died, a proxy dropped it, keepalive found the
// peer gone). The difference matters to operators, so when a call ends by a
// peer-side cancel the server asks the kernel whether the call's TCP
// connection is still ESTABLISHED: if it is, the client cancelled; if not, it
// disconnected. Linux only (/proc/net/tcp{,6}); it is used for the
// classification of ended calls and nothing else, so a wrong answer costs a
// mislabelled metric, never a behaviour.
class PeerProbe {
 public:
  PeerProbe() = default;

  // set_local_port: the port the server listens on; set once it is known.
  void set_local_port(int port) { local_port_.store(port); }

  // IsConnected: whether the TCP connection from `peer` (as
  // ServerContext::peer() spells it, e.g. "ipv4:127.0.0.1:51234" or
  // "ipv6:[::1]:51234") to the server is established, according to a reading
  // of the kernel's table taken no earlier than `since`. nullopt if `peer` is
  // not a TCP peer or the table cannot be read.
  std::optional<bool> IsConnected(absl::string_view peer, absl::Time since);

  // NormalizePeer: "ip:port" for a gRPC peer string, or nullopt.
  static std::optional<std::string> NormalizePeer(absl::string_view peer);

  // ParseProcNetTcp: the "ip:port" of every ESTABLISHED connection to
  // `local_port` in the text of /proc/net/tcp or /proc/net/tcp6.
  static absl::flat_hash_set<std::string> ParseProcNetTcp(absl::string_view text, int local_port);

 private:
  // ReadTableLocked: takes a fresh reading of the kernel's table.
  bool ReadTableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::atomic<int> local_port_{0};
  Mutex mu_;
  absl::Time taken_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::flat_hash_set<std::string> established_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_SERVICE_PEER_PROBE_H_
