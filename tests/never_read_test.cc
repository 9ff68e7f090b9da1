// Clients that open streams and never read them (stuck or hostile), many at
// once, against a server with a small output budget: every one is ended as
// stalled within the stall timeout plus a margin, what they held is freed,
// and clients that read are served throughout.

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "models/model_testing.h"
#include "tests/test_server.h"
#include "tools/load/stall_load.h"

namespace sluice::testing {
namespace {

TEST(NeverReadTest, StreamsNobodyReadsAreStalledAndTheRestAreServed) {
  constexpr int kStreams = 200;
  constexpr absl::Duration kStallTimeout = absl::Milliseconds(500);
  ServerOptions options = TestServer::DefaultOptions();
  options.write_stall_timeout = kStallTimeout;
  options.output_budget_bytes = 16 << 20;  // spent by ~18 of these streams
  options.model_defaults.max_active = 2 * kStreams;
  options.model_defaults.queue_capacity = 2 * kStreams;
  TestServer server(options);

  StallLoadOptions load_options;
  load_options.target = server.target();
  load_options.streams = kStreams;
  load_options.channels = 4;
  load_options.request =
      MakeRequest("echo", std::string(900 << 10, 'x'), {{"chunk_bytes", IntParam(16384)}});
  load_options.request.set_request_id("never-read-");

  // Clients that read, one stream after another, all the while.
  std::atomic<bool> done{false};
  std::atomic<int> served{0}, failed{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      SluiceClient client(server.NewChannel());
      for (int i = 0; i < 10'000 && !done; ++i) {
        StreamOptions stream_options;
        stream_options.deadline = absl::Seconds(30);
        StreamResult r = client.PredictStream(Synthetic({{"tokens", 20}}), stream_options);
        (r.status.ok() ? served : failed)++;
      }
    });
  }

  StallLoad load(load_options);
  const absl::Time start = absl::Now();
  load.Start();
  // The server ends every one of them on its own, as stalled.
  const ModelStats& echo = server.stats("echo");
  const bool all_ended = echo.WaitForEndedTotal(kStreams, absl::Seconds(60));
  const absl::Duration took = absl::Now() - start;
  done = true;
  for (std::thread& t : readers) t.join();
  ASSERT_TRUE(all_ended) << echo.ended_total() << " of " << kStreams << " ended";
  EXPECT_EQ(echo.ended(Method::kPredictStream, EndCause::kStalled, EndStage::kRunning),
            static_cast<uint64_t>(kStreams));
  EXPECT_EQ(echo.in_flight(Method::kPredictStream), 0);
  // Not the 120 s the clients would have held them for. A stream whose model
  // paused on the spent budget with its writes delivered is not waiting on
  // its client but on the budget; once others are freed it fills its buffer
  // and stalls: up to about twice the timeout after the last one opened,
  // plus a margin for a loaded (or sanitized) build.
  EXPECT_LT(took, absl::Seconds(15));
  EXPECT_EQ(server.server().output_budget()->used(), 0u);  // everything they held is freed
  load.CancelAll();
  EXPECT_TRUE(load.WaitDone(absl::Now() + absl::Seconds(30)));
  EXPECT_EQ(load.result().cancelled, kStreams) << load.result().first_other;
  EXPECT_GT(served, 0);
  EXPECT_EQ(failed, 0);
  std::printf(
      "never-read streams: %d, all ended as stalled %s after they started opening; "
      "reading streams served meanwhile: %d\n",
      kStreams, absl::FormatDuration(took).c_str(), served.load());
}

}  // namespace
}  // namespace sluice::testing
