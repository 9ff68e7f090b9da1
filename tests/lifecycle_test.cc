// Every way a call can end, end to end: a full queue, a caller who leaves
// while queued (cancel, deadline, dropped connection), unary cancels, a client
// that stops reading, a peer that vanishes without closing its connection, and
// server shutdown. The synthetic model's own counters witness what the server
// did; the server's ended-call accounting must agree.

#include <signal.h>
#include <sys/wait.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "models/model_testing.h"
#include "tests/server_process.h"
#include "tests/tcp_relay.h"
#include "tests/test_server.h"
#include "tools/subprocess.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(30);

// One worker, one active slot and a queue of two: a hanging call takes the
// slot, so the next calls queue behind it.
ServerOptions OneSlot() {
  ServerOptions options = TestServer::DefaultOptions();
  options.model_overrides["synthetic"] = ModelOptions{ExecutorOptions{1, 1, 2}, {}, {}};
  return options;
}

v1::PredictRequest Hanging() { return Synthetic({{"tokens", 1}, {"hang_at", 0}}); }

class LifecycleTest : public ::testing::Test {
 protected:
  explicit LifecycleTest(ServerOptions options = OneSlot()) : server_(std::move(options)) {}

  const Executor& executor() { return *server_.server().executor("synthetic"); }
  const SyntheticModel::Stats& model() { return server_.synthetic().stats(); }
  const ModelStats& stats() { return server_.stats(); }

  // OccupyTheSlot: a stream that holds the only slot until cancelled.
  std::unique_ptr<OpenStream> OccupyTheSlot() {
    auto stream = std::make_unique<OpenStream>(server_.client().stub(), Hanging());
    EXPECT_TRUE(model().WaitForStarted(1, kWait));
    return stream;
  }

  void ExpectQueued(int n) { EXPECT_TRUE(executor().WaitForQueued(n, absl::Now() + kWait)); }

  // ExpectEnded: the server classified exactly `n` calls this way.
  void ExpectEnded(int total, Method method, EndCause cause, EndStage stage, uint64_t n) {
    ASSERT_TRUE(stats().WaitForEndedTotal(total, kWait));
    EXPECT_EQ(stats().ended(method, cause, stage), n)
        << EndCauseName(cause) << "/" << EndStageName(stage);
  }

  TestServer server_;
};

TEST_F(LifecycleTest, FullQueueIsRefusedAtOnceNamingModelAndLimit) {
  auto busy = OccupyTheSlot();
  OpenStream first(server_.client().stub(), Synthetic({{"tokens", 1}}));
  OpenStream second(server_.client().stub(), Synthetic({{"tokens", 1}}));
  ExpectQueued(2);
  const absl::Time start = absl::Now();
  StreamResult refused =
      server_.client().PredictStream(Synthetic({{"tokens", 1}}), StreamOptions());
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.status.error_message(),
              HasSubstr("model synthetic is at capacity: 1 calls running and 2 queued"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));  // refused, not left waiting
  absl::StatusOr<v1::PredictResponse> unary = server_.client().Predict(Synthetic({{"tokens", 1}}));
  EXPECT_EQ(unary.status().code(), absl::StatusCode::kResourceExhausted);
  busy->Cancel();
  EXPECT_TRUE(first.Finish().ok());
  EXPECT_TRUE(second.Finish().ok());
}

TEST_F(LifecycleTest, QueuedStreamCancelledByItsClientNeverStarts) {
  auto busy = OccupyTheSlot();
  OpenStream queued(server_.client().stub(), Synthetic({{"tokens", 5}}));
  ExpectQueued(1);
  queued.Cancel();
  EXPECT_EQ(queued.Finish().error_code(), grpc::StatusCode::CANCELLED);
  ExpectEnded(1, Method::kPredictStream, EndCause::kClientCancelled, EndStage::kQueued, 1);
  EXPECT_EQ(executor().queued(), 0);
  busy->Cancel();
  ASSERT_TRUE(model().WaitForReleased(1, kWait));
  EXPECT_EQ(model().started(), 1);  // only the call that held the slot
}

TEST_F(LifecycleTest, QueuedUnaryCancelledByItsClientNeverStarts) {
  auto busy = OccupyTheSlot();
  grpc::ClientContext context;
  v1::PredictResponse response;
  std::thread cancel_when_queued([&] {
    ExpectQueued(1);
    context.TryCancel();
  });
  grpc::Status status =
      server_.client().stub().Predict(&context, Synthetic({{"tokens", 5}}), &response);
  cancel_when_queued.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  ExpectEnded(1, Method::kPredict, EndCause::kClientCancelled, EndStage::kQueued, 1);
  busy->Cancel();
  ASSERT_TRUE(model().WaitForReleased(1, kWait));
  EXPECT_EQ(model().started(), 1);
}

TEST_F(LifecycleTest, QueuedCallsWhoseClientDiesNeverStart) {
  auto busy = OccupyTheSlot();
  // One streaming and one unary caller, each a process killed while queued.
  std::vector<std::unique_ptr<Subprocess>> clients;
  for (const char* mode : {"--stream", "--stream=false"}) {
    absl::StatusOr<std::unique_ptr<Subprocess>> cli =
        Subprocess::Start({RunfilePath("client/sluice_cli"), "--target=" + server_.target(),
                           "--model=synthetic", mode, "--param=tokens=5"});
    ASSERT_TRUE(cli.ok());
    clients.push_back(*std::move(cli));
  }
  ExpectQueued(2);
  for (auto& cli : clients) {
    cli->Kill(SIGKILL);
    ASSERT_TRUE(cli->Wait(kWait).ok());
  }
  ExpectEnded(2, Method::kPredictStream, EndCause::kDisconnected, EndStage::kQueued, 1);
  EXPECT_EQ(stats().ended(Method::kPredict, EndCause::kDisconnected, EndStage::kQueued), 1u);
  EXPECT_EQ(executor().queued(), 0);
  busy->Cancel();
  ASSERT_TRUE(model().WaitForReleased(1, kWait));
  EXPECT_EQ(model().started(), 1);
}

TEST_F(LifecycleTest, QueuedCallsPastTheirDeadlineNeverStart) {
  auto busy = OccupyTheSlot();
  OpenStream stream(server_.client().stub(), Synthetic({{"tokens", 5}}), absl::Milliseconds(200));
  absl::StatusOr<v1::PredictResponse> unary =
      server_.client().Predict(Synthetic({{"tokens", 5}}), absl::Milliseconds(200));
  EXPECT_EQ(unary.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(stream.Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ExpectEnded(2, Method::kPredictStream, EndCause::kDeadline, EndStage::kQueued, 1);
  EXPECT_EQ(stats().ended(Method::kPredict, EndCause::kDeadline, EndStage::kQueued), 1u);
  busy->Cancel();
  ASSERT_TRUE(model().WaitForReleased(1, kWait));
  EXPECT_EQ(model().started(), 1);
}

TEST_F(LifecycleTest, DeadlineBoundsQueueTimePlusRunTime) {
  // A call with a 3 s deadline spends 1 s of it in the queue, then runs: it
  // gets the 2 s that are left, not a fresh 3 s. (Seconds, not milliseconds,
  // so that a slow sanitizer build on a loaded machine still starts the call
  // well inside its deadline.)
  auto busy = OccupyTheSlot();
  const absl::Time sent = absl::Now();
  OpenStream late(server_.client().stub(),
                  Synthetic({{"tokens", 1000000}, {"token_interval_us", 10000}}), absl::Seconds(3));
  ExpectQueued(1);
  absl::SleepFor(absl::Seconds(1));  // the scenario: time spent queued (not a synchronisation)
  busy->Cancel();
  EXPECT_EQ(late.Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(absl::Now() - sent, absl::Seconds(6));
  // One chunk per 10 ms (pacing can only make it fewer): at most ~201 in the
  // 2 s it could run, far fewer than the ~301 a fresh 3 s would give.
  EXPECT_GT(late.chunks().size(), 0u);
  EXPECT_LE(late.chunks().size(), 250u);
  ASSERT_TRUE(model().WaitForReleased(2, kWait));
  ExpectEnded(2, Method::kPredictStream, EndCause::kDeadline, EndStage::kRunning, 1);
}

TEST_F(LifecycleTest, UnaryCancelStopsTheModelAndFreesTheWorker) {
  grpc::ClientContext context;
  v1::PredictResponse response;
  std::thread cancel_when_started([&] {
    EXPECT_TRUE(model().WaitForStarted(1, kWait));
    context.TryCancel();
  });
  grpc::Status status = server_.client().stub().Predict(
      &context, Synthetic({{"tokens", 1000000}, {"token_cost_us", 1000}}), &response);
  cancel_when_started.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(model().WaitForReleased(1, kWait));
  EXPECT_LE(model().chunks_after_cancel(), 1);
  EXPECT_LT(model().chunks(), 1000000);
  // The single worker is free: the next call runs.
  EXPECT_TRUE(server_.client().Predict(Synthetic({{"tokens", 3}})).ok());
  ExpectEnded(2, Method::kPredict, EndCause::kClientCancelled, EndStage::kRunning, 1);
}

// --- Clients that stop reading or vanish ------------------------------------

ServerOptions StallAndKeepalive() {
  ServerOptions options = TestServer::DefaultOptions();
  options.model_overrides["synthetic"] = ModelOptions{ExecutorOptions{1, 4, 4}, {}, {}};
  options.stream_buffer_chunks = 4;
  options.write_stall_timeout = absl::Milliseconds(500);
  options.keepalive_time = absl::Milliseconds(300);
  options.keepalive_timeout = absl::Milliseconds(300);
  return options;
}

class SlowClientTest : public LifecycleTest {
 protected:
  SlowClientTest() : LifecycleTest(StallAndKeepalive()) {}
};

TEST_F(SlowClientTest, ClientThatStopsReadingIsCancelledAndReleased) {
  // 64 KiB chunks fill HTTP/2's flow-control windows after a few chunks; the
  // client reads one and then nothing.
  OpenStream stalled(server_.client().stub(),
                     Synthetic({{"tokens", 100000}, {"chunk_bytes", 65536}}));
  ASSERT_TRUE(stalled.ReadChunks(1));
  // While it is stalled, the model's only worker serves others.
  StreamResult other = server_.client().PredictStream(Synthetic({{"tokens", 50}}), StreamOptions());
  EXPECT_TRUE(other.status.ok());
  ASSERT_TRUE(model().WaitForReleased(2, kWait));
  // It made only what the transport (HTTP/2 windows, which gRPC grows to the
  // measured bandwidth-delay product, and socket buffers) and the stream
  // buffer could hold: tens of megabytes at most, not the 100000 chunks asked.
  EXPECT_LT(model().chunks(), 50 + 2000);
  ExpectEnded(2, Method::kPredictStream, EndCause::kStalled, EndStage::kRunning, 1);
  EXPECT_EQ(stalled.Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(SlowClientTest, FinishedStreamWhoseClientNeverReadsIsStalledAndFreed) {
  // The scenario of a stuck or hostile client: a small HTTP/2 window, a
  // stream of 900 KiB that fits the server's buffer (the model finishes at
  // once), and the client never reads. The stream is ending, its write stuck:
  // it is ended as stalled after write_stall_timeout (500 ms here).
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16384);
  args.SetInt("sluice.test_channel_id", 424242);
  auto channel =
      grpc::CreateCustomChannel(server_.target(), grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Inference::NewStub(channel);
  v1::PredictRequest request =
      MakeRequest("echo", std::string(900 << 10, 'x'), {{"chunk_bytes", IntParam(16384)}});
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  const absl::Time start = absl::Now();
  std::unique_ptr<grpc::ClientReader<v1::PredictChunk>> reader =
      stub->PredictStream(&context, request);
  const ModelStats& echo = server_.stats("echo");
  ASSERT_TRUE(echo.WaitForEndedTotal(1, kWait));
  EXPECT_EQ(echo.ended(Method::kPredictStream, EndCause::kStalled, EndStage::kRunning), 1u);
  EXPECT_EQ(echo.in_flight(Method::kPredictStream), 0);
  // Within the timeout plus a margin for a loaded machine, not the 60 s
  // deadline the client would otherwise have held it for.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  context.TryCancel();
  reader->Finish();
}

TEST_F(SlowClientTest, VanishedPeerIsFoundByKeepaliveAndReleased) {
  absl::StatusOr<std::unique_ptr<TcpRelay>> relay = TcpRelay::Start(server_.server().port());
  ASSERT_TRUE(relay.ok()) << relay.status();
  std::unique_ptr<SluiceClient> via_relay = SluiceClient::Connect((*relay)->target());
  OpenStream stream(via_relay->stub(),
                    Synthetic({{"tokens", 1000000}, {"token_interval_us", 20000}}));
  ASSERT_TRUE(stream.ReadChunks(3));
  (*relay)->Freeze();  // the client is gone; its connection still looks open
  const absl::Time frozen_at = absl::Now();
  ASSERT_TRUE(model().WaitForReleased(1, kWait));
  // Keepalive (300 ms + 300 ms here; 10 s + 10 s by default) found it.
  EXPECT_LT(absl::Now() - frozen_at, absl::Seconds(10));
  ExpectEnded(1, Method::kPredictStream, EndCause::kDisconnected, EndStage::kRunning, 1);
  stream.Cancel();
  relay->reset();  // closes the frozen sockets, so the client's call ends too
  stream.Finish();
}

// --- Shutdown -----------------------------------------------------------------

class ShutdownTest : public ::testing::Test {
 protected:
  TestServer server_;
};

TEST_F(ShutdownTest, DrainFinishesShortCallsRefusesNewOnesAndCancelsTheRest) {
  auto channel = server_.NewChannel();
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext watch_context;
  grpc::health::v1::HealthCheckRequest watch_request;
  watch_request.set_service("sluice.v1.Inference");
  auto watch = health->Watch(&watch_context, watch_request);
  grpc::health::v1::HealthCheckResponse health_status;
  ASSERT_TRUE(watch->Read(&health_status));
  EXPECT_EQ(health_status.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // A short stream (about 0.5 s) and one far longer than the grace period.
  OpenStream short_stream(server_.client().stub(),
                          Synthetic({{"tokens", 25}, {"token_interval_us", 20000}}));
  OpenStream long_stream(server_.client().stub(),
                         Synthetic({{"tokens", 1000000}, {"token_interval_us", 20000}}));
  ASSERT_TRUE(short_stream.ReadChunks(1));
  ASSERT_TRUE(long_stream.ReadChunks(1));

  std::thread shutdown([&] { EXPECT_TRUE(server_.server().Shutdown(absl::Seconds(2))); });
  // Draining: health says NOT_SERVING, and new calls are refused.
  ASSERT_TRUE(watch->Read(&health_status));
  EXPECT_EQ(health_status.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  StreamResult refused =
      server_.client().PredictStream(Synthetic({{"tokens", 1}}), StreamOptions());
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("shutting down"));

  EXPECT_TRUE(short_stream.Finish().ok());  // finished within the grace period
  grpc::Status cut = long_stream.Finish();
  EXPECT_EQ(cut.error_code(), grpc::StatusCode::UNAVAILABLE);  // told to retry elsewhere
  shutdown.join();
  watch_context.TryCancel();
  EXPECT_EQ(server_.synthetic().stats().live(), 0);  // every generator released
  const ModelStats& stats = server_.stats();
  EXPECT_EQ(stats.ended(EndCause::kCompleted), 1u);
  EXPECT_EQ(stats.ended(Method::kPredictStream, EndCause::kShutdown, EndStage::kRunning), 1u);
  EXPECT_EQ(stats.ended(Method::kPredictStream, EndCause::kRejected, EndStage::kAdmission), 1u);
}

TEST_F(ShutdownTest, ShutdownWithQueuedAndHangingCallsDoesNotHang) {
  // One slot: a hanging call (it returns only when cancelled) and two queued.
  TestServer server(OneSlot());
  OpenStream hanging(server.client().stub(), Hanging());
  ASSERT_TRUE(server.synthetic().stats().WaitForStarted(1, kWait));
  OpenStream queued1(server.client().stub(), Synthetic({{"tokens", 1}}));
  OpenStream queued2(server.client().stub(), Synthetic({{"tokens", 1}}));
  ASSERT_TRUE(server.server().executor("synthetic")->WaitForQueued(2, absl::Now() + kWait));
  const absl::Time start = absl::Now();
  EXPECT_TRUE(server.server().Shutdown(absl::Milliseconds(100)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(hanging.Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(queued1.Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(queued2.Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(server.synthetic().stats().started(), 1);
  EXPECT_EQ(server.synthetic().stats().live(), 0);
  EXPECT_EQ(server.stats().ended(EndCause::kShutdown), 3u);
}

TEST_F(ShutdownTest, SigtermWithActiveStreamsExitsZero) {
  ServerProcess server("service/sluice_server", {"--shutdown_grace_ms=300"});
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  std::vector<std::unique_ptr<OpenStream>> streams;
  for (int i = 0; i < 100; ++i) {
    streams.push_back(std::make_unique<OpenStream>(
        server.client().stub(), Synthetic({{"tokens", 1000000}, {"token_interval_us", 10000}})));
  }
  for (auto& s : streams) ASSERT_TRUE(s->ReadChunks(1));  // all 100 are generating
  Subprocess& process = server.process();
  process.Kill(SIGTERM);
  for (auto& s : streams) EXPECT_EQ(s->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  absl::StatusOr<int> status = process.Wait(kWait);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status)) << process.Stderr();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << process.Stderr();
  EXPECT_THAT(process.Stderr(), HasSubstr("shutdown complete"));
}

}  // namespace
}  // namespace sluice::testing
