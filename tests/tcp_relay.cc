#include "tests/tcp_relay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"

namespace sluice::testing {
namespace {

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// One direction of a relayed connection: bytes read from `from`, not yet
// written to `to`.
struct Pipe {
  int from;
  int to;
  std::string pending;
  bool eof = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TcpRelay>> TcpRelay::Start(int upstream_port) {
  auto relay = absl::WrapUnique(new TcpRelay());
  relay->upstream_port_ = upstream_port;
  relay->listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(relay->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(relay->listen_fd_, 64) != 0) {
    return absl::InternalError(absl::StrCat("relay cannot listen: ", strerror(errno)));
  }
  socklen_t len = sizeof(addr);
  getsockname(relay->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  relay->port_ = ntohs(addr.sin_port);
  SetNonBlocking(relay->listen_fd_);
  if (pipe(relay->wake_pipe_) != 0) return absl::InternalError("pipe failed");
  relay->thread_ = std::thread([r = relay.get()] { r->Loop(); });
  return relay;
}

TcpRelay::~TcpRelay() {
  stopping_ = true;
  if (wake_pipe_[1] >= 0) (void)!write(wake_pipe_[1], "x", 1);
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(wake_pipe_[0]);
  close(wake_pipe_[1]);
}

void TcpRelay::Loop() {
  std::vector<Pipe> pipes;  // two per connection: client->server, server->client
  std::vector<int> sockets;
  while (!stopping_) {
    std::vector<pollfd> fds = {{wake_pipe_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    const bool frozen = frozen_;
    if (!frozen) {
      for (const Pipe& p : pipes) {
        if (!p.pending.empty()) {
          fds.push_back({p.to, POLLOUT, 0});
        } else if (!p.eof) {
          fds.push_back({p.from, POLLIN, 0});
        }
      }
    }
    // A frozen relay only waits to be destroyed (the wake pipe).
    if (poll(fds.data(), frozen ? 1 : fds.size(), -1) < 0 && errno != EINTR) return;
    if (stopping_ || frozen_) continue;
    if (fds[1].revents & POLLIN) {
      const int client = accept(listen_fd_, nullptr, nullptr);
      if (client >= 0) {
        const int server = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in up{};
        up.sin_family = AF_INET;
        up.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        up.sin_port = htons(upstream_port_);
        if (connect(server, reinterpret_cast<sockaddr*>(&up), sizeof(up)) == 0) {
          SetNonBlocking(client);
          SetNonBlocking(server);
          pipes.push_back({client, server, "", false});
          pipes.push_back({server, client, "", false});
          sockets.push_back(client);
          sockets.push_back(server);
        } else {
          close(client);
          close(server);
        }
      }
    }
    for (Pipe& p : pipes) {
      if (p.pending.empty() && !p.eof) {
        char buf[65536];
        const ssize_t n = read(p.from, buf, sizeof(buf));
        if (n > 0) {
          p.pending.assign(buf, n);
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          p.eof = true;
          shutdown(p.to, SHUT_WR);
        }
      }
      if (!p.pending.empty()) {
        const ssize_t n = write(p.to, p.pending.data(), p.pending.size());
        if (n > 0) p.pending.erase(0, n);
      }
    }
  }
  for (int fd : sockets) close(fd);
}

}  // namespace sluice::testing
