#ifndef SLUICE_TESTS_TCP_RELAY_H_
#define SLUICE_TESTS_TCP_RELAY_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace sluice::testing {

// TcpRelay forwards TCP connections from a loopback port of its own to an
// upstream port, so a test can play the network between client and server.
// Freeze() stops forwarding in both directions without closing anything: to
// the server, the client has vanished (unplugged cable, partition, crashed
// host) while its TCP connection still looks open.
class TcpRelay {
 public:
  // Start: listens on 127.0.0.1:<free port> and relays to 127.0.0.1:`upstream_port`.
  static absl::StatusOr<std::unique_ptr<TcpRelay>> Start(int upstream_port);
  // Stops the relay thread and closes every socket.
  ~TcpRelay();

  int port() const { return port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

  // Freeze: from now on no byte is forwarded and no socket is closed.
  void Freeze() { frozen_ = true; }

 private:
  TcpRelay() = default;
  void Loop();

  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  int upstream_port_ = 0;
  int port_ = 0;
  std::atomic<bool> frozen_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_TCP_RELAY_H_
