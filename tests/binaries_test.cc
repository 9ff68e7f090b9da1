// The server binaries as a user runs them: started as processes with flags,
// called over loopback, stopped with SIGTERM.

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/sluice_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model_testing.h"
#include "tests/metrics_page.h"
#include "tests/server_process.h"
#include "tests/test_pki.h"
#include "tools/subprocess.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(30);

TEST(BinariesTest, ExampleUserServerServesItsModelAndStopsOnSigterm) {
  ServerProcess server("examples/shout_server", {});
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  StreamResult result = server.client().PredictStream(
      MakeRequest("shout", "abc", {{"repeat", IntParam(2)}}), StreamOptions());
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.output, "ABCABC");
  EXPECT_EQ(result.chunks, 6);

  absl::StatusOr<v1::PredictResponse> empty = server.client().Predict(MakeRequest("shout", ""));
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.status().message(), HasSubstr("needs some input"));

  server.process().Kill(SIGTERM);
  absl::StatusOr<int> status = server.process().Wait(kWait);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status)) << server.process().Stderr();
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_THAT(server.process().Stderr(), HasSubstr("shutdown complete"));
}

TEST(BinariesTest, ExampleBatchedServerServesItsModelAndStopsOnSigterm) {
  ServerProcess server("examples/countdown_server", {"--model_options=countdown:max_batch=4"});
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  absl::StatusOr<v1::ListModelsResponse> models = server.client().ListModels();
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->models_size(), 1);
  EXPECT_EQ(models->models(0).max_batch(), 4u);  // the operator's, over the model's 16
  StreamResult result = server.client().PredictStream(
      MakeRequest("countdown", "", {{"from", IntParam(3)}}), StreamOptions());
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.output, "3 2 1 liftoff!");
  EXPECT_EQ(result.finish_reason, v1::FINISH_REASON_STOP);
  absl::StatusOr<v1::PredictResponse> bad =
      server.client().Predict(MakeRequest("countdown", "", {{"from", IntParam(0)}}));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  server.process().Kill(SIGTERM);
  absl::StatusOr<int> status = server.process().Wait(kWait);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.process().Stderr();
}

TEST(BinariesTest, ExampleTorchServerServesItsTorchScriptModel) {
  ServerProcess server("examples/torch_server",
                       {"--model_file=" + RunfilePath("models/torch/testdata/fixed_text.pt"),
                        "--model_options=mylm:max_batch=4"});
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  absl::StatusOr<v1::ListModelsResponse> models = server.client().ListModels();
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->models_size(), 1);
  EXPECT_EQ(models->models(0).name(), "mylm");
  EXPECT_EQ(models->models(0).max_batch(), 4u);
  // fixed_text.pt continues its one text whatever the prompt.
  StreamResult result = server.client().PredictStream(
      MakeRequest("mylm", "Once", {{"temperature", DoubleParam(0)}, {"max_tokens", IntParam(5)}}),
      StreamOptions());
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.output, " upon");
  EXPECT_EQ(result.finish_reason, v1::FINISH_REASON_LENGTH);
  server.StopAndLog();
}

TEST(BinariesTest, BatchedModelRefusesGeneratorOptions) {
  ServerProcess server("examples/countdown_server", {"--model_options=countdown:workers=4"});
  absl::StatusOr<int> status = server.process().Wait(kWait);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0);
  EXPECT_THAT(server.process().Stderr(), HasSubstr("is batched"));
  EXPECT_THAT(server.process().Stderr(), HasSubstr("workers"));
}

TEST(BinariesTest, StockServerServesTheBuiltinModels) {
  ServerProcess server("service/sluice_server", {"--workers=1"});
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  absl::StatusOr<v1::ListModelsResponse> models = server.client().ListModels();
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->models_size(), 4);
  EXPECT_EQ(models->models(0).name(), "batched_synthetic");
  EXPECT_EQ(models->models(0).max_batch(), 32u);  // its calls share steps
  EXPECT_EQ(models->models(1).name(), "charlm");
  EXPECT_EQ(models->models(1).workers(), 1u);
  EXPECT_EQ(models->models(1).max_batch(), 0u);  // one generator per call
  absl::StatusOr<v1::PredictResponse> batched =
      server.client().Predict(MakeRequest("batched_synthetic", "", {{"tokens", IntParam(3)}}));
  ASSERT_TRUE(batched.ok()) << batched.status();
  EXPECT_EQ(batched->output(), "t0 t1 t2 ");
  absl::StatusOr<v1::PredictResponse> text = server.client().Predict(
      MakeRequest("charlm", "The", {{"max_tokens", IntParam(40)}, {"seed", IntParam(1)}}));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_FALSE(text->output().empty());
  server.process().Kill(SIGINT);
  absl::StatusOr<int> status = server.process().Wait(kWait);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.process().Stderr();
}

// CountLines: lines of `log` that contain `text` and, if `severity` is given,
// are of that glog severity (I, W, E, F: the first letter of the line).
int CountLines(const std::vector<std::string>& log, absl::string_view text, char severity = '\0') {
  int n = 0;
  for (const std::string& line : log) {
    if (absl::StrContains(line, text) && (severity == '\0' || line[0] == severity)) ++n;
  }
  return n;
}

TEST(BinariesTest, StockServerServesMetricsOnTheMetricsPort) {
  ServerProcess server("service/sluice_server", {"--metrics_port=0"});
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  const int port = server.MetricsPort();
  ASSERT_GT(port, 0) << server.process().Stderr();
  ASSERT_TRUE(server.client().Predict(MakeRequest("echo", "hi")).ok());

  // The call is accounted a moment after its client has the answer: watch
  // the page as an operator would until it shows.
  const std::string echo_ok =
      "sluice_requests_total{model=\"echo\",method=\"Predict\",code=\"OK\"}";
  const MetricsPage page = ScrapeUntil(port, echo_ok, 1, kWait);
  EXPECT_THAT(page.text(), HasSubstr(echo_ok + " 1\n"));
  EXPECT_THAT(page.text(), HasSubstr("sluice_workers{model=\"charlm\"} 2\n"));
  server.StopAndLog();
}

TEST(BinariesTest, VlogOneLogsEachEndedCallOnceAndModelErrorsAtError) {
  ServerProcess server("service/sluice_server", {"--vlog=1", "--synthetic_fault_injection"});
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  EXPECT_TRUE(server.client().PredictStream(MakeRequest("echo", "hello"), {}).status.ok());
  EXPECT_EQ(
      server.client()
          .PredictStream(
              MakeRequest("synthetic", "", {{"tokens", IntParam(5)}, {"fail_at", IntParam(2)}}), {})
          .status.error_code(),
      grpc::StatusCode::INTERNAL);
  EXPECT_EQ(server.client().Predict(MakeRequest("nope", "x")).status().code(),
            absl::StatusCode::kNotFound);

  const std::vector<std::string> log = server.StopAndLog();
  EXPECT_EQ(CountLines(log, " ended="), 2);
  EXPECT_EQ(CountLines(log, " rejected: "), 1);
  EXPECT_EQ(CountLines(log, "model=echo ended=completed", 'I'), 1);
  EXPECT_EQ(CountLines(log, "model synthetic failed", 'E'), 1);
}

TEST(BinariesTest, DefaultLogHasNothingPerCallOrChunk) {
  ServerProcess server("service/sluice_server", {});
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  StreamResult result =
      server.client().PredictStream(MakeRequest("synthetic", "", {{"tokens", IntParam(500)}}), {});
  ASSERT_TRUE(result.status.ok());
  ASSERT_EQ(result.chunks, 500);
  EXPECT_FALSE(server.client().Predict(MakeRequest("nope", "x")).ok());

  const std::vector<std::string> log = server.StopAndLog();
  EXPECT_EQ(CountLines(log, "PredictStream"), 0);
  EXPECT_EQ(CountLines(log, "Predict "), 0);
  // Start-up and shutdown only: a line per chunk would make hundreds.
  EXPECT_LT(log.size(), 20u) << server.process().Stderr();
}

TEST(BinariesTest, TlsAndTokenFromFlagsAndTheCliSpeaksBoth) {
  absl::StatusOr<TestPki> pki = TestPki::Create();
  ASSERT_TRUE(pki.ok()) << pki.status();
  const std::string token_file = absl::StrCat(std::getenv("TEST_TMPDIR"), "/token");
  std::ofstream(token_file) << "flag-token-123\n";
  ServerProcess server("service/sluice_server",
                       {"--tls_cert=" + pki->server_cert, "--tls_key=" + pki->server_key,
                        "--tls_client_ca=" + pki->ca_cert, "--auth_token_file=" + token_file});
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  EXPECT_THAT(server.process().Stderr(), HasSubstr("(mutual TLS, bearer token required)"));
  const std::vector<std::string> tls = {
      "--tls_ca=" + pki->ca_cert, "--tls_cert=" + pki->client_cert, "--tls_key=" + pki->client_key};
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--model=echo", "--input=hi"});
    return RunCli(server.target(), args);
  };

  CliRun with_file = cli({tls[0], tls[1], tls[2], "--auth_token_file=" + token_file});
  EXPECT_EQ(with_file.exit_code, 0) << with_file.err;
  EXPECT_EQ(with_file.out, "hi");

  setenv("SLUICE_AUTH_TOKEN", "flag-token-123", 1);
  CliRun with_env = cli({tls[0], tls[1], tls[2]});
  unsetenv("SLUICE_AUTH_TOKEN");
  EXPECT_EQ(with_env.exit_code, 0) << with_env.err;

  CliRun without_token = cli({tls[0], tls[1], tls[2]});
  EXPECT_EQ(without_token.exit_code, 1);
  EXPECT_THAT(without_token.err, HasSubstr("status=UNAUTHENTICATED"));
  EXPECT_THAT(without_token.err, HasSubstr("requires a bearer token"));

  CliRun without_cert = cli({tls[0], "--auth_token_file=" + token_file});
  EXPECT_EQ(without_cert.exit_code, 1);
  EXPECT_THAT(without_cert.err, HasSubstr("status=UNAVAILABLE"));

  CliRun plaintext = cli({"--auth_token_file=" + token_file});
  EXPECT_EQ(plaintext.exit_code, 1);
  EXPECT_THAT(plaintext.err, HasSubstr("status=UNAVAILABLE"));
  server.StopAndLog();
}

TEST(BinariesTest, BadFlagsAreReportedAndTheServerDoesNotStart) {
  ServerProcess server("service/sluice_server", {"--model_options=synthetic:workrs=2"});
  EXPECT_FALSE(server.WaitReady());
  absl::StatusOr<int> status = server.process().Wait(kWait);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_NE(WEXITSTATUS(*status), 0);
  EXPECT_THAT(server.process().Stderr(), HasSubstr("unknown key \"workrs\""));
}

TEST(BinariesTest, StockServerRefusesFaultInjectionUnlessAllowedAndServesChosenModels) {
  ServerProcess server("service/sluice_server", {"--builtin_models=synthetic,echo"});
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  absl::StatusOr<v1::PredictResponse> fault = server.client().Predict(
      MakeRequest("synthetic", "", {{"tokens", IntParam(5)}, {"hang_at", IntParam(1)}}));
  EXPECT_EQ(fault.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fault.status().message(), HasSubstr("--synthetic_fault_injection"));
  absl::StatusOr<v1::ListModelsResponse> models = server.client().ListModels();
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->models_size(), 2);
  EXPECT_EQ(models->models(0).name(), "echo");
  EXPECT_EQ(models->models(1).name(), "synthetic");
}

TEST(BinariesTest, HelpDocumentsEveryServerFlag) {
  absl::StatusOr<std::unique_ptr<Subprocess>> help =
      Subprocess::Start({RunfilePath("service/sluice_server"), "--helpfull"});
  ASSERT_TRUE(help.ok());
  ASSERT_TRUE((*help)->Wait(kWait).ok());
  const std::string text = (*help)->Stdout();
  for (const char* flag : {"--host",
                           "--port",
                           "--metrics_port",
                           "--tls_cert",
                           "--tls_key",
                           "--tls_client_ca",
                           "--auth_token_file",
                           "--workers",
                           "--max_active",
                           "--queue_capacity",
                           "--model_options",
                           "--stream_buffer_chunks",
                           "--write_stall_timeout_ms",
                           "--keepalive_time_ms",
                           "--keepalive_timeout_ms",
                           "--shutdown_grace_ms",
                           "--charlm_corpus",
                           "--charlm_order",
                           "--builtin_models",
                           "--synthetic_fault_injection"}) {
    EXPECT_THAT(text, HasSubstr(flag)) << flag;
  }
}

TEST(BinariesTest, CliStreamsCancelsAndExitsWithTheStatus) {
  ServerProcess server("service/sluice_server", {});
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();

  CliRun ok = RunCli(server.target(), {"--model=echo", "--input=hello", "--stream"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "hello\n");
  EXPECT_THAT(ok.err, HasSubstr("status=OK finish_reason=FINISH_REASON_STOP chunks=2"));

  CliRun params = RunCli(server.target(), {"--model=synthetic", "--param", "tokens=2",
                                           "--param=chunk_bytes=4", "--stream"});
  EXPECT_EQ(params.exit_code, 0) << params.err;
  EXPECT_EQ(params.out, "t0 .t1 .\n");

  CliRun unary = RunCli(server.target(), {"--model=echo", "--input=hi"});
  EXPECT_EQ(unary.exit_code, 0) << unary.err;
  EXPECT_EQ(unary.out, "hi");

  CliRun missing = RunCli(server.target(), {"--model=nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("status=NOT_FOUND"));

  CliRun cancelled = RunCli(
      server.target(), {"--model=synthetic", "--param=tokens=100000", "--param=token_cost_us=1000",
                        "--stream", "--cancel_after_chunks=3"});
  EXPECT_EQ(cancelled.exit_code, 1);
  EXPECT_THAT(cancelled.err, HasSubstr("status=CANCELLED"));
  EXPECT_THAT(cancelled.err, HasSubstr("cancelled_by=client chunks=3"));

  CliRun timed = RunCli(server.target(),
                        {"--model=synthetic", "--param=tokens=100000", "--param=token_cost_us=1000",
                         "--stream", "--cancel_after_ms=100", "--quiet"});
  EXPECT_EQ(timed.exit_code, 1);
  EXPECT_THAT(timed.err, HasSubstr("status=CANCELLED"));

  CliRun late = RunCli(server.target(), {"--model=synthetic", "--param=tokens=100000",
                                         "--param=token_cost_us=1000", "--deadline_ms=100"});
  EXPECT_EQ(late.exit_code, 1);
  EXPECT_THAT(late.err, HasSubstr("status=DEADLINE_EXCEEDED"));

  CliRun bad = RunCli(server.target(), {"--model=charlm", "--param=temperature=hot"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("must be set as double_param, got string_param"));

  CliRun list = RunCli(server.target(), {"--list_models"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_THAT(list.out, HasSubstr("--param max_tokens=<int64>"));
}

}  // namespace
}  // namespace sluice::testing
