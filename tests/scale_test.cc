// The suite's small version of the 10,000-stream figure (tools/load): many
// concurrent open streams cost memory, not threads; each is served and each
// is cancellable.

#include <memory>

#include "gtest/gtest.h"
#include "tests/test_server.h"
#include "tools/load/stream_load.h"
#include "tools/proc_stats.h"

namespace sluice::testing {
namespace {

constexpr int kStreams = 500;
constexpr absl::Duration kWait = absl::Seconds(60);

ServerOptions ManySlots() {
  ServerOptions options = TestServer::DefaultOptions();
  options.model_overrides["synthetic"] =
      ModelOptions{ExecutorOptions{2, kStreams, kStreams}, {}, {}};
  return options;
}

TEST(ScaleTest, ManyOpenStreamsAreServedAndCancellableWithoutAThreadEach) {
  TestServer server(ManySlots());
  const int threads_before = ReadProcStats(getpid())->threads;
  LoadOptions options;
  options.target = server.target();
  options.streams = kStreams;
  options.channels = 5;
  // Slow streams: one chunk every 100 ms, paced without holding a thread.
  options.request = Synthetic({{"tokens", 1000000}, {"token_interval_us", 100000}}, "scale-");
  StreamLoad load(options);
  load.Start();
  ASSERT_TRUE(load.WaitForFirstChunks(kStreams, absl::Now() + kWait));
  EXPECT_EQ(server.server().executor("synthetic")->active(), kStreams);

  // Every stream keeps being served while all are open.
  load.MarkChunks();
  EXPECT_EQ(load.WaitForChunksSinceMark(absl::Now() + kWait), kStreams);
  // Streams are not threads: 500 of them added far fewer than 500 threads
  // (to client and server together, in this one process).
  EXPECT_LT(ReadProcStats(getpid())->threads - threads_before, 50);

  // Half leave; their generators are released and the others go on.
  load.CancelFirst(kStreams / 2);
  ASSERT_TRUE(load.WaitDone(kStreams / 2, absl::Now() + kWait));
  ASSERT_TRUE(server.synthetic().stats().WaitForReleased(kStreams / 2, kWait));
  EXPECT_EQ(server.synthetic().stats().live(), kStreams / 2);
  load.MarkChunks();
  EXPECT_EQ(load.WaitForChunksSinceMark(absl::Now() + kWait), kStreams / 2);

  load.CancelAll();
  ASSERT_TRUE(load.WaitDone(kStreams, absl::Now() + kWait));
  ASSERT_TRUE(server.synthetic().stats().WaitForReleased(kStreams, kWait));
  EXPECT_EQ(load.counts().cancelled, kStreams);
  EXPECT_TRUE(server.server().executor("synthetic")->WaitIdle(absl::Now() + kWait));
  ASSERT_TRUE(server.stats().WaitForEndedTotal(kStreams, kWait));
}

TEST(ScaleTest, ShutdownWhileManyPacedStreamsAreBeingCancelled) {
  // Paced streams keep the executor's sleepers and its timer keeper busy;
  // the clients cancel every stream and the server shuts down while the
  // cancels are still arriving.
  for (int round = 0; round < 3; ++round) {
    TestServer server(ManySlots());
    LoadOptions options;
    options.target = server.target();
    options.streams = kStreams;
    options.channels = 5;
    options.request = Synthetic({{"tokens", 1000000}, {"token_interval_us", 5000}}, "storm-");
    StreamLoad load(options);
    load.Start();
    ASSERT_TRUE(load.WaitForFirstChunks(kStreams, absl::Now() + kWait));
    load.CancelAll();
    EXPECT_TRUE(server.server().Shutdown(absl::ZeroDuration()));
    ASSERT_TRUE(load.WaitDone(kStreams, absl::Now() + kWait));
    EXPECT_EQ(server.synthetic().stats().live(), 0);
  }
}

}  // namespace
}  // namespace sluice::testing
