// TorchScript language models served by the stock server, as a user runs
// it: started with --torch_models (libtorch loaded from the engine library
// next to the binary), called over loopback with sluice_cli and the C++
// client, watched on /metrics.

#include <sys/wait.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model_testing.h"
#include "tests/metrics_page.h"
#include "tests/server_process.h"
#include "tests/test_server.h"
#include "tools/subprocess.h"

namespace sluice::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(60);

std::string TestModel(const std::string& name) {
  return RunfilePath(absl::StrCat("models/torch/testdata/", name));
}

std::string Tinylm() { return RunfilePath("models/tinylm/tinylm.pt"); }

// TorchServer: the stock server serving `models` (NAME=PATH,...), libtorch
// on one thread, plus `flags`.
std::vector<std::string> TorchFlags(const std::string& models,
                                    std::vector<std::string> flags = {}) {
  flags.insert(flags.begin(),
               {"--torch_models=" + models, "--torch_threads=1", "--builtin_models=echo"});
  return flags;
}

TEST(TorchServerTest, CliStreamsTextFromTinylm) {
  ServerProcess server("service/sluice_server", TorchFlags("tinylm=" + Tinylm()));
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  const std::vector<std::string> args = {"--model=tinylm", "--input=The miller walked",
                                         "--param",        "max_tokens=96",
                                         "--param",        "seed=7",
                                         "--stream"};
  const CliRun run = RunCli(server.target(), args);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("status=OK finish_reason=FINISH_REASON_LENGTH chunks=96"));
  ASSERT_EQ(run.out.size(), 97u);  // 96 bytes of text (ASCII: one per chunk), then a newline
  // A trained model writes text: letters, spaces and punctuation, not
  // arbitrary bytes.
  int texty = 0;
  for (char c : run.out) texty += absl::ascii_isalpha(c) || c == ' ' || c == '.' || c == ',';
  EXPECT_GE(texty, 85) << run.out;
  // The same seed, the same text.
  EXPECT_EQ(RunCli(server.target(), args).out, run.out);

  absl::StatusOr<v1::ListModelsResponse> models = server.client().ListModels();
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->models_size(), 2);
  EXPECT_EQ(models->models(1).name(), "tinylm");
  EXPECT_EQ(models->models(1).max_batch(), 32u);
  EXPECT_THAT(models->models(1).description(), HasSubstr("context 256"));
  server.StopAndLog();
}

TEST(TorchServerTest, GreedyStreamsAtOnceMatchEachAlone) {
  ServerProcess server("service/sluice_server",
                       TorchFlags("tiny=" + TestModel("tiny_lm.pt"), {"--metrics_port=0"}));
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  const std::vector<std::string> prompts = {
      "The river", "", "A mill", "sluice gates open", "x", "Water wheels", "Flour", "Night"};
  auto request = [](const std::string& prompt) {
    return MakeRequest("tiny", prompt,
                       {{"temperature", DoubleParam(0)}, {"max_tokens", IntParam(24)}});
  };
  std::vector<std::string> alone;
  for (const std::string& p : prompts) {
    StreamResult r = server.client().PredictStream(request(p), StreamOptions());
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    alone.push_back(r.output);
  }
  std::vector<StreamResult> together(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] {
      together[i] = server.client().PredictStream(request(prompts[i]), StreamOptions());
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_TRUE(together[i].status.ok()) << together[i].status.error_message();
    EXPECT_EQ(together[i].output, alone[i]) << "prompt \"" << prompts[i] << "\"";
  }
  // They did share steps.
  const MetricsPage page = Scrape(server.MetricsPort());
  EXPECT_LT(page["sluice_batch_size_bucket{model=\"tiny\",le=\"1\"}"],
            page["sluice_batch_size_count{model=\"tiny\"}"]);
  server.StopAndLog();
}

TEST(TorchServerTest, CancelFromTheCliFreesTheSequenceWithoutFurtherSteps) {
  ServerProcess server("service/sluice_server",
                       TorchFlags("tinylm=" + Tinylm(), {"--metrics_port=0", "--vlog=1"}));
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  const int port = server.MetricsPort();
  ASSERT_GT(port, 0) << server.process().Stderr();
  const CliRun run =
      RunCli(server.target(),
             {"--model=tinylm", "--input=The river", "--param=max_tokens=240", "--param=seed=5",
              "--stream", "--cancel_after_chunks=5", "--request_id=leaver"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, AllOf(HasSubstr("status=CANCELLED"), HasSubstr("cancelled_by=client")));
  // Released (its cache with it), and computed in no step after the one in
  // flight when the server learned of the cancel.
  const MetricsPage page = ScrapeUntil(port, "sluice_batch_sequences{model=\"tinylm\"}", 0, kWait);
  EXPECT_EQ(page["sluice_batch_state_bytes{model=\"tinylm\"}"], 0);
  EXPECT_LE(page["sluice_batch_sequence_steps_after_end_total{model=\"tinylm\"}"], 1);
  const std::vector<std::string> log = server.StopAndLog();
  bool ended = false;
  for (const std::string& line : log) {
    if (!absl::StrContains(line, "request_id=leaver")) continue;
    ended = absl::StrContains(line, "ended=client_cancelled") ||
            absl::StrContains(line, "ended=disconnected");  // the CLI exits right after
    EXPECT_TRUE(ended) << line;
  }
  EXPECT_TRUE(ended);
}

TEST(TorchServerTest, StateBytesShowTheCacheOfAnOpenStream) {
  ServerProcess server("service/sluice_server",
                       TorchFlags("tinylm=" + Tinylm(), {"--metrics_port=0"}));
  ASSERT_TRUE(server.WaitReady()) << server.process().Stderr();
  const int port = server.MetricsPort();
  ASSERT_GT(port, 0);
  {
    // Reads one chunk and then nothing: the sequence holds its cache,
    // generating into the stream's buffer and then sitting out.
    // Greedy: the same text every time, which does not end within the buffer.
    OpenStream stream(server.client().stub(), MakeRequest("tinylm", "The mill",
                                                          {{"max_tokens", IntParam(200)},
                                                           {"temperature", DoubleParam(0)}}));
    ASSERT_TRUE(stream.ReadChunks(1));
    const MetricsPage held =
        ScrapeUntil(port, "sluice_batch_sequences{model=\"tinylm\"}", 1, kWait);
    // tinylm's cache: 4 layers x keys and values x 256 positions x 128 floats.
    const double cache = 4 * 2 * 256 * 128 * 4;
    EXPECT_GE(held["sluice_batch_state_bytes{model=\"tinylm\"}"], cache);
    EXPECT_LT(held["sluice_batch_state_bytes{model=\"tinylm\"}"], cache + 4096);
    stream.Cancel();
    EXPECT_EQ(stream.Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  const MetricsPage freed =
      ScrapeUntil(port, "sluice_batch_state_bytes{model=\"tinylm\"}", 0, kWait);
  EXPECT_EQ(freed["sluice_batch_sequences{model=\"tinylm\"}"], 0);
  server.StopAndLog();
}

// A file that breaks the contract stops the start with a message naming the
// file and what was expected.
TEST(TorchServerTest, BrokenModelFilesStopTheStart) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {TestModel("no_decode.pt"), "lacks the method decode(tokens: Tensor [B] int64"},
      {TestModel("bad_logits.pt"), "prefill returned logits [1, 258] float32; expected [1, 257]"},
      {TestModel("not_torchscript.pt"), "not a TorchScript file"},
      {TestModel("missing.pt"), "cannot open it: No such file or directory"},
  };
  for (const auto& [file, message] : cases) {
    ServerProcess server("service/sluice_server", TorchFlags("broken=" + file));
    absl::StatusOr<int> status = server.process().Wait(kWait);
    ASSERT_TRUE(status.ok()) << file;
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << server.process().Stderr();
    EXPECT_THAT(server.process().Stderr(),
                AllOf(HasSubstr("cannot start"), HasSubstr(file), HasSubstr(message)));
  }
}

TEST(TorchServerTest, MissingEngineLibraryStopsTheStart) {
  ServerProcess server(
      "service/sluice_server",
      TorchFlags("tinylm=" + Tinylm(), {"--torch_engine_library=/no/such/lib.so"}));
  absl::StatusOr<int> status = server.process().Wait(kWait);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << server.process().Stderr();
  EXPECT_THAT(server.process().Stderr(),
              HasSubstr("cannot load the TorchScript engine library /no/such/lib.so"));
}

}  // namespace
}  // namespace sluice::testing
