#ifndef SLUICE_SERVICE_PEER_PROBE_H_
#define SLUICE_SERVICE_PEER_PROBE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
// disconnected. It is used for the classification of ended calls and nothing
// else, so a wrong answer costs a mislabelled metric, never a behaviour.
//
// Linux only. The question goes to the kernel's socket diagnostics (netlink
// sock_diag) as an exact lookup of the connection by its four addresses, a
// hash lookup that costs microseconds. Where netlink is not available it falls
// back to reading /proc/net/tcp{,6}, which walks the whole connection table
// (milliseconds of CPU on a machine with a large one).
class PeerProbe {
 public:
  PeerProbe() = default;

  // set_local_address: the address and port the server listens on; set once
  // the port is known. A wildcard or unresolvable host means "any of this
  // machine's addresses".
  void set_local_address(absl::string_view host, int port);

  // IsConnected: whether the TCP connection from `peer` (as
  // ServerContext::peer() spells it, e.g. "ipv4:127.0.0.1:51234" or
  // "ipv6:[::1]:51234") to the server is established. When it has to fall
  // back to /proc, the answer comes from a reading of the table taken no
  // earlier than `since`. nullopt if `peer` is not a TCP peer or the kernel
  // cannot be asked.
  std::optional<bool> IsConnected(absl::string_view peer, absl::Time since);

  // NormalizePeer: "ip:port" for a gRPC peer string, or nullopt.
  static std::optional<std::string> NormalizePeer(absl::string_view peer);

  // ParseProcNetTcp: the "ip:port" of every ESTABLISHED connection to
  // `local_port` in the text of /proc/net/tcp or /proc/net/tcp6.
  static absl::flat_hash_set<std::string> ParseProcNetTcp(absl::string_view text, int local_port);

 private:
  struct Address {
    int family = 0;             // AF_INET or AF_INET6
    unsigned char ip[16] = {};  // 4 or 16 bytes, network order
  };

  // FindLocalAddresses: `host` itself, or every address of this machine if
  // `host` is a wildcard or not an IP address.
  static void FindLocalAddresses(absl::string_view host, std::vector<Address>* out);
  // AskNetlink: the answer from sock_diag, or nullopt if it gave none.
  std::optional<bool> AskNetlink(const std::string& peer_key) const;
  // ReadTableLocked: takes a fresh reading of /proc's table.
  bool ReadTableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The listening port and the candidate local addresses, published together
  // by set_local_address (which runs once gRPC is already serving, so calls
  // may read them concurrently) and read as one immutable snapshot.
  struct Local {
    uint16_t port = 0;
    std::vector<Address> addresses;
  };
  std::shared_ptr<const Local> local() const;

  mutable Mutex local_mu_;
  std::shared_ptr<const Local> local_ ABSL_GUARDED_BY(local_mu_) = std::make_shared<Local>();
  Mutex mu_;
  absl::Time taken_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::flat_hash_set<std::string> established_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_SERVICE_PEER_PROBE_H_
