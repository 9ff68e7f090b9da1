#include "service/peer_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(PeerProbeTest, NormalizesGrpcPeerStrings) {
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv4:127.0.0.1:5678"), "127.0.0.1:5678");
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv6:[::1]:5678"), "::1:5678");
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv6:%5B::1%5D:5678"), "::1:5678");
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv6:[::ffff:10.0.0.2]:80"), "10.0.0.2:80");
  EXPECT_EQ(PeerProbe::NormalizePeer("unix:/tmp/socket"), std::nullopt);
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv6:garbage"), std::nullopt);
}

TEST(PeerProbeTest, AnswersOnlyIpAndPortInTheKernelTablesSpelling) {
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv4:127.0.0.1:0080"), "127.0.0.1:80");
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv6:[0:0::1]:80"), "::1:80");
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv4:not-an-ip:80"), std::nullopt);
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv4:127.0.0.1"), std::nullopt);
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv4:127.0.0.1:"), std::nullopt);
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv4:127.0.0.1:+80"), std::nullopt);
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv4:127.0.0.1:65536"), std::nullopt);
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv6:[::1]"), std::nullopt);
  EXPECT_EQ(PeerProbe::NormalizePeer("ipv6:[::1]junk:80"), std::nullopt);
}

TEST(PeerProbeTest, ParsesEstablishedConnectionsToTheLocalPort) {
  // Three sockets: an ESTABLISHED one to port 50051 (0xC383) from 127.0.0.1:40000
  // (0x9C40), a listening one, and an ESTABLISHED one to another port.
  const char kTcp[] =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
      "   0: 0100007F:C383 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0\n"
      "   1: 0100007F:C383 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0\n"
      "   2: 0100007F:1F90 0100007F:9C41 01 00000000:00000000 00:00000000 00000000     0\n";
  absl::flat_hash_set<std::string> established = PeerProbe::ParseProcNetTcp(kTcp, 50051);
  EXPECT_EQ(established.size(), 1u);
  EXPECT_TRUE(established.contains("127.0.0.1:40000"));
}

TEST(PeerProbeTest, ParsesIpv6AndMappedAddresses) {
  // ::1 port 50051 <- ::1 port 40000, and ::ffff:127.0.0.1 port 50051 <- ::ffff:127.0.0.2:40001.
  const char kTcp6[] =
      "  sl  local_address                         remote_address                        st\n"
      "   0: 00000000000000000000000001000000:C383 00000000000000000000000001000000:9C40 01\n"
      "   1: 0000000000000000FFFF00000100007F:C383 0000000000000000FFFF00000200007F:9C41 01\n"
      "   2: 00000000000000000000000001000000:C383 00000000000000000000000001000000:9C42 08\n";
  absl::flat_hash_set<std::string> established = PeerProbe::ParseProcNetTcp(kTcp6, 50051);
  EXPECT_EQ(established.size(), 2u);
  EXPECT_TRUE(established.contains("::1:40000"));
  EXPECT_TRUE(established.contains("127.0.0.2:40001"));
}

TEST(PeerProbeTest, IgnoresPortsBeyond16Bits) {
  const char kTcp[] =
      "   0: 0100007F:C383 0100007F:9C442 01 00000000:00000000 00:00000000 00000000     0\n";
  EXPECT_TRUE(PeerProbe::ParseProcNetTcp(kTcp, 50051).empty());
}

// A real connection on loopback: established, then closed by the client.
class LiveConnection {
 public:
  explicit LiveConnection(int family) : family_(family) {
    listener_ = socket(family, SOCK_STREAM, 0);
    sockaddr_storage addr{};
    socklen_t len = Loopback(&addr, 0);
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(listen(listener_, 4), 0);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    server_port_ = Port(addr);
    client_ = socket(family, SOCK_STREAM, 0);
    len = Loopback(&addr, server_port_);
    EXPECT_EQ(connect(client_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    accepted_ = accept(listener_, nullptr, nullptr);
    getsockname(client_, reinterpret_cast<sockaddr*>(&addr), &len);
    client_port_ = Port(addr);
  }
  ~LiveConnection() {
    if (client_ >= 0) close(client_);
    close(accepted_);
    close(listener_);
  }
  void CloseClient() {
    close(client_);
    client_ = -1;
  }
  int server_port() const { return server_port_; }
  std::string peer() const {
    return family_ == AF_INET ? absl::StrCat("ipv4:127.0.0.1:", client_port_)
                              : absl::StrCat("ipv6:[::1]:", client_port_);
  }

 private:
  socklen_t Loopback(sockaddr_storage* addr, int port) {
    if (family_ == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(addr);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a->sin_port = htons(port);
      return sizeof(sockaddr_in);
    }
    auto* a = reinterpret_cast<sockaddr_in6*>(addr);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    a->sin6_port = htons(port);
    return sizeof(sockaddr_in6);
  }
  static int Port(const sockaddr_storage& addr) {
    return addr.ss_family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port)
                                     : ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  }

  const int family_;
  int listener_ = -1, client_ = -1, accepted_ = -1;
  int server_port_ = 0, client_port_ = 0;
};

TEST(PeerProbeTest, SeesALiveConnectionAndItsEnd) {
  for (const char* host : {"127.0.0.1", "0.0.0.0"}) {
    LiveConnection connection(AF_INET);
    PeerProbe probe;
    probe.set_local_address(host, connection.server_port());
    EXPECT_EQ(probe.IsConnected(connection.peer(), absl::Now()), true) << host;
    connection.CloseClient();  // the server's side is now CLOSE_WAIT
    EXPECT_EQ(probe.IsConnected(connection.peer(), absl::Now()), false) << host;
  }
}

TEST(PeerProbeTest, SeesALiveIpv6Connection) {
  LiveConnection connection(AF_INET6);
  PeerProbe probe;
  probe.set_local_address("::1", connection.server_port());
  EXPECT_EQ(probe.IsConnected(connection.peer(), absl::Now()), true);
  connection.CloseClient();
  EXPECT_EQ(probe.IsConnected(connection.peer(), absl::Now()), false);
}

TEST(PeerProbeTest, NonTcpPeerHasNoAnswer) {
  PeerProbe probe;
  probe.set_local_address("127.0.0.1", 50051);
  EXPECT_EQ(probe.IsConnected("unix:/tmp/x", absl::Now()), std::nullopt);
}

}  // namespace
}  // namespace sluice
