// sluice_soak: a bounded cancel storm against a real server process, to show
// that nothing accumulates: mixed calls that complete, are cancelled at a
// random chunk, run out of time, or whose client process is killed
// mid-stream, for --duration_s. It samples the server's RSS throughout and
// checks that once the storm is over the RSS is back within --rss_tolerance of
// its warm baseline (taken after --warmup_s), that every call the server saw
// ended, and that every generator was released (the server's own metrics).
//
//   bazel build -c opt //tools/soak:sluice_soak //service:sluice_server //client:sluice_cli
//   bazel-bin/tools/soak/sluice_soak --server=bazel-bin/service/sluice_server
//       --cli=bazel-bin/client/sluice_cli --duration_s=600

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "sluice/v1/inference.grpc.pb.h"
#include "tests/http_client.h"
#include "tools/proc_stats.h"
#include "tools/subprocess.h"

ABSL_FLAG(std::string, server, "", "Path to sluice_server (started on free loopback ports).");
ABSL_FLAG(std::string, cli, "", "Path to sluice_cli, for the clients that get killed mid-stream.");
ABSL_FLAG(int, duration_s, 60, "How long the storm lasts.");
ABSL_FLAG(int, warmup_s, 10, "The warm baseline RSS is taken this long into the storm.");
ABSL_FLAG(int, concurrency, 16, "Client threads making calls at once.");
ABSL_FLAG(int, kills_per_second, 5, "Client processes killed mid-stream per second.");
ABSL_FLAG(double, rss_tolerance, 0.10, "Allowed growth of the final RSS over the warm baseline.");
ABSL_FLAG(int, seed, 1, "Random seed.");
ABSL_FLAG(std::string, server_args, "", "Extra flags for the server, space-separated.");

namespace sluice {
namespace {

enum class Action { kComplete, kCancel, kDeadline, kUnary, kUnaryDeadline };
constexpr int kNumActions = 5;
const char* ActionName(Action a) {
  switch (a) {
    case Action::kComplete:
      return "stream, read to the end";
    case Action::kCancel:
      return "stream, cancelled at a random chunk";
    case Action::kDeadline:
      return "stream, deadline mid-generation";
    case Action::kUnary:
      return "unary, completed";
    case Action::kUnaryDeadline:
      return "unary, deadline mid-generation";
  }
  return "?";
}

v1::PredictRequest Synthetic(int64_t tokens, int64_t cost_us) {
  v1::PredictRequest r;
  r.set_model("synthetic");
  (*r.mutable_parameters())["tokens"].set_int64_param(tokens);
  (*r.mutable_parameters())["token_cost_us"].set_int64_param(cost_us);
  return r;
}

struct Tally {
  std::atomic<int64_t> by_action[kNumActions] = {};
  std::atomic<int64_t> killed{0};
  std::atomic<int64_t> unexpected{0};
};

// One call of the given kind; counts a status that does not fit it.
void Call(v1::Inference::Stub& stub, Action action, std::mt19937& rng, Tally& tally) {
  grpc::ClientContext context;
  grpc::Status status;
  grpc::StatusCode expected = grpc::StatusCode::OK;
  switch (action) {
    case Action::kComplete:
    case Action::kCancel:
    case Action::kDeadline: {
      v1::PredictRequest request = Synthetic(action == Action::kComplete ? 30 : 400, 200);
      if (action == Action::kDeadline) {
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(20 + rng() % 30)));
        expected = grpc::StatusCode::DEADLINE_EXCEEDED;
      }
      auto reader = stub.PredictStream(&context, request);
      v1::PredictChunk chunk;
      const int cancel_at = 1 + static_cast<int>(rng() % 50);
      int n = 0;
      while (reader->Read(&chunk)) {
        if (action == Action::kCancel && ++n == cancel_at) {
          context.TryCancel();
          expected = grpc::StatusCode::CANCELLED;
        }
      }
      status = reader->Finish();
      break;
    }
    case Action::kUnary:
    case Action::kUnaryDeadline: {
      v1::PredictResponse response;
      if (action == Action::kUnaryDeadline) {
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(10 + rng() % 20)));
        expected = grpc::StatusCode::DEADLINE_EXCEEDED;
      }
      status =
          stub.Predict(&context, Synthetic(action == Action::kUnary ? 20 : 500, 200), &response);
      break;
    }
  }
  ++tally.by_action[static_cast<int>(action)];
  if (status.error_code() != expected) ++tally.unexpected;
}

// Metric: the sum of every sample of `family` whose labels contain all of
// `labels` (e.g. {"cause=\"stalled\""}) on a /metrics page.
double Metric(const std::string& page, absl::string_view family,
              const std::vector<std::string>& labels = {}) {
  double total = 0;
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (!absl::StartsWith(line, family) || line.size() <= family.size()) continue;
    const char next = line[family.size()];
    if (next != '{' && next != ' ') continue;
    bool match = true;
    for (const std::string& l : labels) match = match && line.find(l) != absl::string_view::npos;
    if (!match) continue;
    double v;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) total += v;
  }
  return total;
}

int Run() {
  const std::string dir = absl::StrCat("/tmp/sluice_soak.", getpid());
  mkdir(dir.c_str(), 0755);
  std::vector<std::string> argv = {absl::GetFlag(FLAGS_server),
                                   "--port=0",
                                   "--port_file=" + dir + "/port",
                                   "--metrics_port=0",
                                   "--metrics_port_file=" + dir + "/metrics_port",
                                   "--max_active=64",
                                   "--queue_capacity=4096"};
  for (absl::string_view arg :
       absl::StrSplit(absl::GetFlag(FLAGS_server_args), ' ', absl::SkipWhitespace())) {
    argv.emplace_back(arg);
  }
  absl::StatusOr<std::unique_ptr<Subprocess>> server = Subprocess::Start(argv);
  if (!server.ok()) {
    std::fprintf(stderr, "cannot start the server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::string> port = WaitForFile(dir + "/port", **server, absl::Seconds(60));
  absl::StatusOr<std::string> metrics_port_text =
      WaitForFile(dir + "/metrics_port", **server, absl::Seconds(5));
  int metrics_port = 0;
  if (!port.ok() || !metrics_port_text.ok() ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(*metrics_port_text), &metrics_port)) {
    std::fprintf(stderr, "the server did not start:\n%s\n", (*server)->Stderr().c_str());
    return 1;
  }
  const std::string target = absl::StrCat("127.0.0.1:", absl::StripAsciiWhitespace(*port));
  const pid_t pid = (*server)->pid();
  const int64_t idle_rss = ReadProcStats(pid)->rss_bytes;
  std::printf("server %s (pid %d), idle RSS %s, log %s\n", target.c_str(), pid,
              FormatMib(idle_rss).c_str(), (*server)->stderr_path().c_str());

  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(absl::GetFlag(FLAGS_duration_s));
  Tally tally;
  std::vector<std::thread> threads;
  for (int t = 0; t < absl::GetFlag(FLAGS_concurrency); ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(absl::GetFlag(FLAGS_seed) * 1000 + t);
      // Each thread has a connection of its own.
      grpc::ChannelArguments args;
      args.SetInt("sluice.soak_channel", t);
      auto stub = v1::Inference::NewStub(
          grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
      while (absl::Now() < end) Call(*stub, static_cast<Action>(rng() % kNumActions), rng, tally);
    });
  }
  // Clients that die: a CLI process per stream, killed mid-stream.
  std::thread killer([&] {
    if (absl::GetFlag(FLAGS_cli).empty() || absl::GetFlag(FLAGS_kills_per_second) <= 0) return;
    const absl::Duration every = absl::Seconds(1) / absl::GetFlag(FLAGS_kills_per_second);
    std::mt19937 rng(absl::GetFlag(FLAGS_seed));
    for (absl::Time next = absl::Now(); next < end; next += every) {
      auto cli =
          Subprocess::Start({absl::GetFlag(FLAGS_cli), "--target=" + target, "--model=synthetic",
                             "--stream", "--param=tokens=100000", "--param=token_cost_us=200"});
      if (!cli.ok()) continue;
      // Kill it once its stream is flowing (its first chunk is on its
      // stdout), a random while later.
      const absl::Time give_up = absl::Now() + absl::Seconds(3);
      while ((*cli)->Stdout().empty() && (*cli)->Running() && absl::Now() < give_up) {
        absl::SleepFor(absl::Milliseconds(2));
      }
      absl::SleepFor(absl::Milliseconds(rng() % 20));
      (*cli)->Kill(SIGKILL);
      (void)(*cli)->Wait(absl::Seconds(10));
      ++tally.killed;
      absl::SleepFor(next + every - absl::Now());  // pacing
    }
  });

  // Sample the server's RSS while the storm runs.
  int64_t warm = 0, peak = 0;
  for (absl::Time tick = start + absl::Seconds(5); tick <= end; tick += absl::Seconds(5)) {
    absl::SleepFor(tick - absl::Now());
    std::optional<ProcStats> s = ReadProcStats(pid);
    if (!s) break;
    peak = std::max(peak, s->rss_bytes);
    if (warm == 0 && tick - start >= absl::Seconds(absl::GetFlag(FLAGS_warmup_s)))
      warm = s->rss_bytes;
    std::printf("t=%4.0fs  RSS %s  CPU %.1fs\n", absl::ToDoubleSeconds(tick - start),
                FormatMib(s->rss_bytes).c_str(), absl::ToDoubleSeconds(s->cpu));
    std::fflush(stdout);
  }
  for (auto& t : threads) t.join();
  killer.join();

  // Storm over: every call the server saw must end and every generator go.
  std::string page;
  bool settled = false;
  for (const absl::Time give_up = absl::Now() + absl::Seconds(30); absl::Now() < give_up;) {
    absl::StatusOr<testing::HttpResponse> r = testing::HttpGet(metrics_port, "/metrics");
    if (r.ok()) page = r->body;
    if (r.ok() && Metric(page, "sluice_calls_in_flight", {"model=\"synthetic\""}) == 0) {
      settled = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  const int64_t final_rss = ReadProcStats(pid)->rss_bytes;

  std::printf("\ncalls made by the clients:\n");
  int64_t calls = 0;
  for (int a = 0; a < kNumActions; ++a) {
    calls += tally.by_action[a];
    std::printf("  %-40s %lld\n", ActionName(static_cast<Action>(a)),
                static_cast<long long>(tally.by_action[a].load()));
  }
  std::printf("  %-40s %lld\n", "stream, client process killed",
              static_cast<long long>(tally.killed.load()));
  std::printf("  %-40s %lld\n", "ended with an unexpected status",
              static_cast<long long>(tally.unexpected.load()));
  std::printf("\ncalls ended, as the server classified them (its /metrics):\n");
  for (const char* cause : {"completed", "client_cancelled", "deadline", "disconnected", "stalled",
                            "shutdown", "rejected", "error"}) {
    std::printf("  %-40s %.0f\n", cause,
                Metric(page, "sluice_calls_ended_total",
                       {"model=\"synthetic\"", absl::StrCat("cause=\"", cause, "\"")}));
  }
  const double ended = Metric(page, "sluice_calls_ended_total", {"model=\"synthetic\""});
  std::printf(
      "  %-40s %.0f (of %lld made; the rest never reached it: deadlines that passed in\n"
      "  %-40s  transit, clients killed before they connected)\n",
      "total", ended, static_cast<long long>(calls + tally.killed.load()), "");
  std::printf("\nRSS: idle %s, warm baseline %s, peak %s, after the storm %s (%+.1f%% of warm)\n",
              FormatMib(idle_rss).c_str(), FormatMib(warm).c_str(), FormatMib(peak).c_str(),
              FormatMib(final_rss).c_str(), warm > 0 ? 100.0 * (final_rss - warm) / warm : 0.0);

  // Every call the server saw has ended (none in flight), no client saw a
  // status that does not fit what it did, and memory came back.
  bool ok = settled && tally.unexpected == 0 && warm > 0 &&
            final_rss <= warm * (1 + absl::GetFlag(FLAGS_rss_tolerance));
  if (!settled) std::printf("FAILED: calls still in flight 30 s after the storm\n");
  (*server)->Kill(SIGTERM);
  absl::StatusOr<int> exit = (*server)->Wait(absl::Seconds(30));
  const bool clean = ExitedCleanly(exit);
  std::printf("server exit after SIGTERM: %s\n",
              clean ? "0" : absl::StrCat("NOT CLEAN: ", DescribeExit(exit)).c_str());
  ok = ok && clean;
  std::printf("result: %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A bounded cancel storm against a sluice server; checks that "
      "nothing accumulates.");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_server).empty()) {
    std::fprintf(stderr, "--server is required\n");
    return 2;
  }
  return sluice::Run();
}
