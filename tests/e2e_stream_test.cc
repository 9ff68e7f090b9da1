// End-to-end: a real server over loopback, real gRPC clients, and the
// server-side model's own counters as the witness of what the server did.

#include <signal.h>
#include <sys/wait.h>

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model_testing.h"
#include "tests/test_server.h"
#include "tools/subprocess.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(30);

class StreamTest : public ::testing::Test {
 protected:
  // ExpectGeneratorReleasedWithin: the server released every generator it
  // started (the model's own counter), within `timeout`.
  void ExpectGeneratorReleasedWithin(absl::Duration timeout) {
    const int64_t started = server_.synthetic().stats().started();
    EXPECT_TRUE(server_.synthetic().stats().WaitForReleased(started, timeout))
        << "started " << started << ", released " << server_.synthetic().stats().released();
  }

  TestServer server_;
};

TEST_F(StreamTest, FullStreamEndsWithFinishReasonAndUsage) {
  StreamResult result =
      server_.client().PredictStream(Synthetic({{"tokens", 20}}, "full-1"), StreamOptions());
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.chunks, 20);
  EXPECT_EQ(result.finish_reason, v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(result.usage.output_chunks(), 20u);
  EXPECT_EQ(result.usage.output_bytes(), result.output.size());
  EXPECT_THAT(result.output, HasSubstr("t0 t1 t2 "));
  ASSERT_TRUE(server_.stats().WaitForEndedTotal(1, kWait));
  EXPECT_EQ(server_.stats().ended(EndCause::kCompleted), 1u);
}

TEST_F(StreamTest, ChunksArriveInOrderWithIndexes) {
  OpenStream stream(server_.client().stub(), Synthetic({{"tokens", 5}}));
  ASSERT_TRUE(stream.Finish().ok());
  ASSERT_EQ(stream.chunks().size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(stream.chunks()[i].index(), static_cast<uint64_t>(i));
  EXPECT_EQ(stream.chunks().back().finish_reason(), v1::FINISH_REASON_LENGTH);
}

TEST_F(StreamTest, ClientCancelStopsGenerationAtOnce) {
  // The mission's scenario: 3000 tokens of 1 ms each, cancelled after 10.
  grpc::Status status = StreamAndCancelAfter(
      server_.client().stub(), Synthetic({{"tokens", 3000}, {"token_cost_us", 1000}}), 10);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  ExpectGeneratorReleasedWithin(kWait);
  const SyntheticModel::Stats& model = server_.synthetic().stats();
  // At most one chunk past the cancel: the step in flight when it arrived
  // (which may have begun a moment after the cancel, racing the worker's
  // check). What was made before the cancel is what the client read plus
  // what it had not read yet: one chunk per millisecond the client took to
  // read its 10 and cancel. The bound allows it a stream buffer's worth of
  // lag (64 ms), not the 3 s a generator that ignored the cancel would run.
  EXPECT_LE(model.steps_after_cancel(), 1);
  EXPECT_LE(model.chunks_after_cancel(), 1);
  const auto lag = static_cast<int64_t>(TestServer::DefaultOptions().stream_buffer_chunks);
  EXPECT_LE(model.chunks(), 10 + lag + 1);
  ASSERT_TRUE(server_.stats().WaitForEndedTotal(1, kWait));
  EXPECT_EQ(
      server_.stats().ended(Method::kPredictStream, EndCause::kClientCancelled, EndStage::kRunning),
      1u);
}

TEST_F(StreamTest, DeadlineEndsTheStreamAndTheGeneration) {
  OpenStream stream(server_.client().stub(),
                    Synthetic({{"tokens", 100000}, {"token_cost_us", 1000}}),
                    absl::Milliseconds(300));
  grpc::Status status = stream.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_GT(stream.chunks().size(), 0u);
  ExpectGeneratorReleasedWithin(kWait);
  // 300 ms of 1 ms chunks: the model stopped near the deadline, not at 100000.
  EXPECT_LT(server_.synthetic().stats().chunks(), 2000);
  ASSERT_TRUE(server_.stats().WaitForEndedTotal(1, kWait));
  EXPECT_EQ(server_.stats().ended(EndCause::kDeadline), 1u);
}

TEST_F(StreamTest, KilledClientProcessReleasesTheGenerator) {
  absl::StatusOr<std::unique_ptr<Subprocess>> cli = Subprocess::Start(
      {RunfilePath("client/sluice_cli"), "--target=" + server_.target(), "--model=synthetic",
       "--stream", "--param=tokens=1000000", "--param=token_cost_us=1000"});
  ASSERT_TRUE(cli.ok()) << cli.status();
  ASSERT_TRUE(server_.synthetic().stats().WaitForStarted(1, kWait));
  (*cli)->Kill(SIGKILL);
  absl::StatusOr<int> exit = (*cli)->Wait(kWait);
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(WIFSIGNALED(*exit));
  ExpectGeneratorReleasedWithin(kWait);
  EXPECT_LE(server_.synthetic().stats().steps_after_cancel(), 1);
  EXPECT_LE(server_.synthetic().stats().chunks_after_cancel(), 1);
  EXPECT_LT(server_.synthetic().stats().chunks(), 1000000);
  ASSERT_TRUE(server_.stats().WaitForEndedTotal(1, kWait));
  EXPECT_EQ(server_.stats().ended(EndCause::kDisconnected), 1u);
}

TEST_F(StreamTest, UnknownModelIsNotFoundAndNamesTheModels) {
  v1::PredictRequest request = MakeRequest("no-such-model", "x");
  StreamResult result = server_.client().PredictStream(request, StreamOptions());
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(result.status.error_message(), HasSubstr("no model named \"no-such-model\""));
  EXPECT_THAT(result.status.error_message(), HasSubstr("charlm, echo, synthetic"));
}

TEST_F(StreamTest, EmptyModelIsInvalidArgument) {
  StreamResult result = server_.client().PredictStream(MakeRequest("", "x"), StreamOptions());
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(result.status.error_message(), HasSubstr("PredictRequest.model is empty"));
}

TEST_F(StreamTest, BadParameterIsInvalidArgumentAndNeverQueues) {
  StreamResult result = server_.client().PredictStream(
      MakeRequest("charlm", "x", {{"max_tokens", IntParam(0)}}), StreamOptions());
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(result.status.error_message(),
            "parameter max_tokens of model charlm must be 1..4096, got 0");
  ASSERT_TRUE(server_.stats("charlm").WaitForEndedTotal(1, kWait));
  EXPECT_EQ(server_.stats("charlm").ended(Method::kPredictStream, EndCause::kRejected,
                                          EndStage::kAdmission),
            1u);
}

TEST_F(StreamTest, ModelErrorMidStreamIsInternalAndServerKeepsServing) {
  StreamResult failed =
      server_.client().PredictStream(Synthetic({{"tokens", 10}, {"fail_at", 4}}), StreamOptions());
  EXPECT_EQ(failed.status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(failed.status.error_message(), HasSubstr("synthetic failure at chunk 4"));
  EXPECT_EQ(failed.chunks, 4);  // what came before the error was delivered

  StreamResult thrown =
      server_.client().PredictStream(Synthetic({{"tokens", 10}, {"throw_at", 2}}), StreamOptions());
  EXPECT_EQ(thrown.status.error_code(), grpc::StatusCode::INTERNAL);

  StreamResult after = server_.client().PredictStream(Synthetic({{"tokens", 3}}), StreamOptions());
  EXPECT_TRUE(after.status.ok());
  ExpectGeneratorReleasedWithin(kWait);
}

TEST_F(StreamTest, ModelThatHangsPastTheDeadlineIsReleasedAndTheServerServesOn) {
  // The step at chunk 2 blocks until the call is given up on; the deadline
  // ends it, the client hears DEADLINE_EXCEEDED, the generator is released.
  OpenStream stream(server_.client().stub(), Synthetic({{"tokens", 10}, {"hang_at", 2}}),
                    absl::Milliseconds(300));
  EXPECT_EQ(stream.Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(stream.chunks().size(), 2u);
  ExpectGeneratorReleasedWithin(kWait);
  EXPECT_TRUE(
      server_.client().PredictStream(Synthetic({{"tokens", 3}}), StreamOptions()).status.ok());
  ASSERT_TRUE(server_.stats().WaitForEndedTotal(2, kWait));
  EXPECT_EQ(server_.stats().ended(EndCause::kDeadline), 1u);
}

TEST_F(StreamTest, UnaryPredictReturnsTheWholeOutput) {
  absl::StatusOr<v1::PredictResponse> response = server_.client().Predict(
      MakeRequest("echo", "hello, sluice", {{"chunk_bytes", IntParam(3)}}));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->output(), "hello, sluice");
  EXPECT_EQ(response->model(), "echo");
  EXPECT_EQ(response->finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(response->usage().output_chunks(), 5u);
  EXPECT_EQ(response->usage().input_bytes(), 13u);
}

TEST_F(StreamTest, UnaryDeadlineStopsTheModel) {
  absl::StatusOr<v1::PredictResponse> response = server_.client().Predict(
      Synthetic({{"tokens", 100000}, {"token_cost_us", 1000}}), absl::Milliseconds(200));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded);
  ExpectGeneratorReleasedWithin(kWait);
  EXPECT_LT(server_.synthetic().stats().chunks(), 2000);
}

TEST_F(StreamTest, CharLmIsDeterministicForASeed) {
  v1::PredictRequest request =
      MakeRequest("charlm", "The mill", {{"max_tokens", IntParam(80)}, {"seed", IntParam(7)}});
  StreamResult a = server_.client().PredictStream(request, StreamOptions());
  StreamResult b = server_.client().PredictStream(request, StreamOptions());
  ASSERT_TRUE(a.status.ok() && b.status.ok());
  EXPECT_GT(a.chunks, 0);
  EXPECT_EQ(a.output, b.output);
  absl::StatusOr<v1::PredictResponse> unary = server_.client().Predict(request);
  ASSERT_TRUE(unary.ok());
  EXPECT_EQ(unary->output(), a.output);
}

TEST_F(StreamTest, ListModelsDescribesModelsAndParameters) {
  absl::StatusOr<v1::ListModelsResponse> models = server_.client().ListModels();
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->models_size(), 4);
  EXPECT_EQ(models->models(0).name(), "batched_synthetic");
  EXPECT_EQ(models->models(0).max_batch(), 32u);
  EXPECT_EQ(models->models(1).name(), "charlm");
  EXPECT_EQ(models->models(1).max_batch(), 0u);
  const v1::ModelInfo& synthetic = models->models(3);
  EXPECT_EQ(synthetic.name(), "synthetic");
  EXPECT_EQ(synthetic.workers(), 2u);
  ASSERT_GT(synthetic.parameters_size(), 1);
  EXPECT_EQ(synthetic.parameters(0).name(), "tokens");
  EXPECT_EQ(synthetic.parameters(0).type(), "int64");
}

TEST(LimitsTest, TooLargeRequestIsResourceExhaustedAndNeverReachesAModel) {
  ServerOptions options = TestServer::DefaultOptions();
  options.max_receive_message_bytes = 1024;
  TestServer server(options);

  StreamResult big =
      server.client().PredictStream(MakeRequest("echo", std::string(2000, 'x')), StreamOptions());
  EXPECT_EQ(big.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(big.chunks, 0);
  EXPECT_EQ(server.client().Predict(MakeRequest("echo", std::string(2000, 'x'))).status().code(),
            absl::StatusCode::kResourceExhausted);

  // Under the limit is fine; it is the only call the model ever saw.
  StreamResult small =
      server.client().PredictStream(MakeRequest("echo", std::string(900, 'x')), StreamOptions());
  EXPECT_TRUE(small.status.ok()) << small.status.error_message();
  ASSERT_TRUE(server.stats("echo").WaitForEndedTotal(1, kWait));
  EXPECT_EQ(server.stats("echo").ended_total(), 1u);
}

TEST(LimitsTest, RequestsInFlightAreBoundedInMemory) {
  ServerOptions options = TestServer::DefaultOptions();
  options.max_request_memory_bytes = 2 << 20;
  TestServer server(options);
  // A call holding a 1.5 MiB request (the model hangs until cancelled).
  v1::PredictRequest held = Synthetic({{"tokens", 1}, {"hang_at", 0}});
  held.set_input(std::string(1536 << 10, 'x'));
  auto holder = std::make_unique<OpenStream>(server.client().stub(), held);
  ASSERT_TRUE(server.synthetic().stats().WaitForStarted(1, kWait));

  // Another 1 MiB would pass the bound: refused at once, before any model.
  v1::PredictRequest more = MakeRequest("echo", std::string(1 << 20, 'y'));
  StreamResult refused = server.client().PredictStream(more, StreamOptions());
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("--max_request_memory_bytes"));
  // Small requests still fit.
  EXPECT_TRUE(
      server.client().PredictStream(MakeRequest("echo", "hi"), StreamOptions()).status.ok());

  // Once the first call is done, its request no longer counts.
  holder->Cancel();
  holder->Finish();
  holder.reset();
  ASSERT_TRUE(server.stats().WaitForNoneInFlight(kWait));
  StreamResult accepted = server.client().PredictStream(more, StreamOptions());
  EXPECT_TRUE(accepted.status.ok()) << accepted.status.error_message();
}

}  // namespace
}  // namespace sluice::testing
