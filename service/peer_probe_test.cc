#include "service/peer_probe.h"

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

TEST(PeerProbeTest, NonTcpPeerHasNoAnswer) {
  PeerProbe probe;
  probe.set_local_port(50051);
  EXPECT_EQ(probe.IsConnected("unix:/tmp/x", absl::Now()), std::nullopt);
}

}  // namespace
}  // namespace sluice
