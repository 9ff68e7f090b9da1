// The TorchScript section: tinylm (models/tinylm) served by the stock
// server, batched against one sequence per step, at 1, 8 and 32 concurrent
// streams; the same file driven by the loop a Python user would write
// (torch_peer.py) as the peer; and what a caller leaving costs: the model's
// CPU after the cancel, and the model steps it was still in.

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/http_client.h"
#include "tests/metrics_text.h"
#include "tools/benchmark/bench_stats.h"
#include "tools/benchmark/child_server.h"
#include "tools/benchmark/sections.h"
#include "tools/benchmark/stream_probe.h"
#include "tools/proc_stats.h"
#include "tools/subprocess.h"

namespace sluice::bench {
namespace {

using ::sluice::testing::HttpGet;
using ::sluice::testing::HttpResponse;
using ::sluice::testing::MetricsPage;

constexpr char kPrompt[] = "The river";
// The batch loop of model "tinylm". Threads are matched by name prefix, so no
// other model here may have a name that starts with "tinylm".
constexpr char kLoopThread[] = "batch:tinylm";

struct TorchSizes {
  int reps = 5;
  int64_t tokens = 200;  // per stream; with the prompt, within tinylm's context of 256
  std::vector<int> streams = {1, 8, 32};
  int cancels = 10;
  int64_t cancel_after = 20;                              // chunks
  absl::Duration after_cancel = absl::Milliseconds(300);  // CPU window after each cancel
};

TorchSizes Sizes(const BenchConfig& config) {
  TorchSizes s;
  if (config.quick) {
    s.reps = 1;
    s.cancels = 3;
  }
  return s;
}

v1::PredictRequest Tinylm(const std::string& model, int64_t tokens, double temperature,
                          int64_t seed) {
  v1::PredictRequest request;
  request.set_model(model);
  request.set_input(kPrompt);
  auto& p = *request.mutable_parameters();
  p["max_tokens"].set_int64_param(tokens);
  p["temperature"].set_double_param(temperature);
  p["seed"].set_int64_param(seed);
  return request;
}

// Round: `n` streams of `tokens` each, started together and read as fast as
// they come. Aggregate tokens/s from the first start to the last end (a
// byte-level model's ASCII output: one chunk per token); each stream's time
// to its first token.
struct Round {
  bool ok = false;
  double tokens_per_s = 0;
  std::vector<double> first_ms;
};

Round RunRound(const ChildServer& server, const std::string& model, int n, int64_t tokens,
               double temperature) {
  Round round;
  std::vector<std::shared_ptr<grpc::Channel>> channels =
      MakeChannels(server.target(), std::min(n, 8), absl::Now() + absl::Seconds(10));
  if (channels.empty()) return round;
  StreamSet set(std::move(channels));
  std::vector<StreamPlan> plans(n);
  for (int i = 0; i < n; ++i) plans[i].request = Tinylm(model, tokens, temperature, i + 1);
  set.Start(std::move(plans));
  if (!set.WaitDone(absl::Now() + absl::Seconds(180))) return round;
  absl::Time first = absl::InfiniteFuture(), last = absl::InfinitePast();
  int64_t chunks = 0;
  round.ok = true;
  for (const StreamRecord& r : set.records()) {
    round.ok = round.ok && r.code == grpc::StatusCode::OK && r.chunks == tokens;
    first = std::min(first, r.started);
    last = std::max(last, r.ended);
    chunks += r.chunks;
    round.first_ms.push_back(absl::ToDoubleMilliseconds(r.first_chunk - r.started));
  }
  round.tokens_per_s = static_cast<double>(chunks) / absl::ToDoubleSeconds(last - first);
  return round;
}

// PythonLoop: torch_peer.py on the same file and prompt, greedy, one thread
// for libtorch and OpenBLAS as the server has, `batch` sequences decoded
// together.
struct PeerRun {
  double tokens_per_s = 0;
  double first_token_ms = 0;
  double cpu_us_per_token = 0;
};
std::optional<PeerRun> PythonLoop(const BenchConfig& config, const TorchSizes& sizes, int batch) {
  absl::StatusOr<std::unique_ptr<Subprocess>> peer = Subprocess::Start(
      {"/usr/bin/env", "OPENBLAS_NUM_THREADS=1", "/usr/bin/python3", config.torch_peer,
       "--model=" + config.tinylm, absl::StrCat("--prompt=", kPrompt),
       absl::StrCat("--tokens=", sizes.tokens), absl::StrCat("--batch=", batch), "--reps=3",
       "--threads=1"});
  if (!peer.ok()) return std::nullopt;
  absl::StatusOr<int> status = (*peer)->Wait(absl::Seconds(120));
  PeerRun run;
  for (absl::string_view field : absl::StrSplit((*peer)->Stdout(), absl::ByAnyChar(" \n"))) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(field, '=');
    double* to = kv.first == "tokens_per_s"       ? &run.tokens_per_s
                 : kv.first == "first_token_ms"   ? &run.first_token_ms
                 : kv.first == "cpu_us_per_token" ? &run.cpu_us_per_token
                                                  : nullptr;
    if (to != nullptr && !absl::SimpleAtod(kv.second, to)) return std::nullopt;
  }
  if (!ExitedCleanly(status) || run.tokens_per_s <= 0) {
    std::fprintf(stderr, "torch_peer.py failed (%s): %s\n", DescribeExit(status).c_str(),
                 (*peer)->Stderr().c_str());
    return std::nullopt;
  }
  return run;
}

void RunTorchThroughput(const BenchConfig& config, const TorchSizes& sizes, ChildServer& server,
                        Report& report, const std::string& section) {
  std::vector<double> peer_rate, peer_first, peer_cpu, peer_batch;
  std::vector<double> loop_cpu_us;  // the model loop's CPU per token, 1 stream
  std::map<int, std::vector<double>> batched, unbatched;
  std::map<int, std::vector<double>> first_batched, first_unbatched;
  bool ok = true;
  for (int rep = 0; rep < sizes.reps; ++rep) {
    if (std::optional<PeerRun> peer = PythonLoop(config, sizes, 1)) {
      peer_rate.push_back(peer->tokens_per_s);
      peer_first.push_back(peer->first_token_ms);
      peer_cpu.push_back(peer->cpu_us_per_token);
    }
    if (std::optional<PeerRun> peer = PythonLoop(config, sizes, 32)) {
      peer_batch.push_back(peer->tokens_per_s);
    }
    for (int n : sizes.streams) {
      // Interleaved, and which goes first alternates. A round of one stream
      // lasts a tenth of a second: three of them, the median taken.
      for (int k = 0; k < 2; ++k) {
        const bool one_per_step = (k + rep) % 2 == 1;
        const std::string model = one_per_step ? "one_tinylm" : "tinylm";
        std::vector<double> rates;
        // The model loop's CPU per token is taken at one stream, batched.
        const bool timed = n == 1 && !one_per_step;
        for (int i = 0; i < (n == 1 ? 3 : 1); ++i) {
          std::optional<ThreadsRunTime> cpu0, cpu1;
          if (timed) cpu0 = ReadThreadsRunTime(server.pid(), kLoopThread);
          Round r = RunRound(server, model, n, sizes.tokens, 0);
          if (timed) cpu1 = ReadThreadsRunTime(server.pid(), kLoopThread);
          ok = ok && r.ok;
          rates.push_back(r.tokens_per_s);
          auto& firsts = (one_per_step ? first_unbatched : first_batched)[n];
          firsts.insert(firsts.end(), r.first_ms.begin(), r.first_ms.end());
          if (cpu0 && cpu1) {
            loop_cpu_us.push_back(absl::ToDoubleMicroseconds(cpu1->named - cpu0->named) /
                                  static_cast<double>(sizes.tokens));
          }
        }
        (one_per_step ? unbatched : batched)[n].push_back(Summarize(rates).p50);
      }
    }
  }
  if (!ok) {
    report.Add(section, "every stream ended OK with all its tokens", "NO", "yes", Check(false));
  }
  for (int n : sizes.streams) {
    const std::string label = absl::StrCat(n, n == 1 ? " stream" : " streams");
    report.Add(section, label + ": aggregate tokens/s, batched / one sequence per step",
               absl::StrCat(FormatSpread(batched[n]), " / ", FormatSpread(unbatched[n])));
    report.Add(
        section, label + ": time to first token p50 / p99, batched; one per step",
        absl::StrCat(P50P99(first_batched[n], " ms"), "; ", P50P99(first_unbatched[n], " ms")));
    if (n > 1) {
      const double ratio = Summarize(batched[n]).p50 / Summarize(unbatched[n]).p50;
      const bool judged = n == 32;
      report.Add(section, label + ": batched over one sequence per step",
                 FormatSpread(Ratios(batched[n], unbatched[n]), "x"), judged ? ">= 3x" : "",
                 judged ? Check(ratio >= 3) : Verdict::kNone);
    }
  }
  const double one = Summarize(batched[1]).p50;
  const double at32 = Summarize(batched[32]).p50;
  report.Add(section, "32 streams over 1 stream, batched (aggregate tokens/s)",
             FormatNumber(at32 / one) + "x", ">= 4x", Check(at32 >= 4 * one));
  if (peer_rate.empty()) {
    report.Add(section, "Python loop (torch_peer.py)", "did not run", "", Verdict::kNotMet);
    return;
  }
  report.Add(section, "peer: a Python loop over the same file, greedy: tokens/s; first token",
             absl::StrCat(FormatSpread(peer_rate), "; ", FormatSpread(peer_first, " ms")));
  report.Add(section,
             "CPU per token at 1 stream: sluice's model loop thread / the Python loop's process",
             absl::StrCat(FormatSpread(loop_cpu_us, " us"), " / ", FormatSpread(peer_cpu, " us")));
  // Judged on the figure shown: the median of the interleaved repetitions'
  // ratios (the two medians' ratio could disagree with it).
  const std::vector<double> over_peer = Ratios(batched[1], peer_rate);
  const double peer = Summarize(peer_rate).p50;
  report.Add(section, "sluice at 1 stream over the Python loop (tokens/s)",
             FormatSpread(over_peer, "x"), ">= 1x", Check(Summarize(over_peer).p50 >= 1.0));
  // What batching can give at all: the model alone, no server, 32 sequences
  // per decode call against one (first start to last token, as above).
  if (!peer_batch.empty()) {
    report.Add(section,
               "the model alone (Python loop): tokens/s at a batch of 32; over a batch of 1",
               absl::StrCat(FormatSpread(peer_batch), "; ",
                            FormatSpread(Ratios(peer_batch, peer_rate), "x")));
    report.Add(section, "sluice's 32-over-1 ratio, of the model's own",
               FormatNumber((at32 / one) / (Summarize(peer_batch).p50 / peer)) + "x");
  }
}

void RunTorchCancel(const BenchConfig& config, const TorchSizes& sizes, ChildServer& server,
                    Report& report, const std::string& section) {
  // A whole stream's model CPU, for scale.
  std::optional<ThreadsRunTime> before = ReadThreadsRunTime(server.pid(), kLoopThread);
  Round full = RunRound(server, "tinylm", 1, sizes.tokens, 0);
  std::optional<ThreadsRunTime> after = ReadThreadsRunTime(server.pid(), kLoopThread);
  if (!before || !after || !full.ok) {
    report.Add(section, "cancel measurement", "failed", "", Verdict::kNotMet);
    return;
  }
  const double full_ms = absl::ToDoubleMilliseconds(after->named - before->named);

  // The server's own record: per released sequence, the sequence-steps
  // computed after its call ended (a histogram with buckets 0, 1, 2, 4).
  const std::string kAfterEnd = "sluice_batch_sequence_steps_after_end_total{model=\"tinylm\"}";
  const std::string kAtMostOne = "sluice_batch_steps_after_end_bucket{model=\"tinylm\",le=\"1\"}";
  const std::string kReleased = "sluice_batch_steps_after_end_count{model=\"tinylm\"}";
  auto scrape = [&] {
    return MetricsPage(HttpGet(server.metrics_port(), "/metrics").value_or(HttpResponse()).body);
  };
  const MetricsPage page_before = scrape();
  std::vector<double> loop_ms, process_ms;
  for (int i = 0; i < sizes.cancels; ++i) {
    std::vector<std::shared_ptr<grpc::Channel>> channels =
        MakeChannels(server.target(), 1, absl::Now() + absl::Seconds(10));
    std::optional<ThreadsRunTime> at_cancel;
    StreamSet set(std::move(channels),
                  [&](int) { at_cancel = ReadThreadsRunTime(server.pid(), kLoopThread); });
    std::vector<StreamPlan> plans(1);
    plans[0].request = Tinylm("tinylm", sizes.tokens, 0, i);
    plans[0].cancel_after_chunks = sizes.cancel_after;
    set.Start(std::move(plans));
    set.WaitDone(absl::Now() + absl::Seconds(60));
    absl::SleepFor(sizes.after_cancel);  // the window measured, not a synchronisation
    std::optional<ThreadsRunTime> later = ReadThreadsRunTime(server.pid(), kLoopThread);
    if (!at_cancel || !later) continue;
    loop_ms.push_back(absl::ToDoubleMilliseconds(later->named - at_cancel->named));
    process_ms.push_back(absl::ToDoubleMilliseconds(later->all - at_cancel->all));
  }
  const MetricsPage page_after = scrape();
  auto delta = [&](const std::string& series) { return page_after[series] - page_before[series]; };
  const double steps_after_end = delta(kAfterEnd);
  const double released = delta(kReleased);
  const double at_most_one = delta(kAtMostOne);
  report.Add(section, "a whole stream: the model loop's CPU (for scale)",
             absl::StrCat(FormatNumber(full_ms), " ms for ", sizes.tokens, " tokens"));
  const Summary loop = Summarize(loop_ms), all = Summarize(process_ms);
  report.Add(section,
             absl::StrCat("after a cancel at chunk ", sizes.cancel_after,
                          ": the model loop's CPU in the next ",
                          absl::FormatDuration(sizes.after_cancel), ", p50 / max"),
             absl::StrCat(FormatNumber(loop.p50), " / ", FormatNumber(loop.max), " ms (",
                          loop_ms.size(), " cancels)"));
  report.Add(section, "after a cancel: the whole server's CPU in that window, p50 / max",
             absl::StrCat(FormatNumber(all.p50), " / ", FormatNumber(all.max), " ms"));
  report.Add(section,
             "sequence-steps computed after the cancel (the server's count): in all; cancelled "
             "sequences with at most 1",
             absl::StrCat(FormatNumber(steps_after_end), " in ", FormatNumber(released),
                          " cancels; ", FormatNumber(at_most_one), " of ", FormatNumber(released)),
             "at most 1 each (the step in flight): no later step",
             Check(released == sizes.cancels && at_most_one == released));
}

}  // namespace

void RunTorch(const BenchConfig& config, Report& report) {
  const std::string section = "TorchScript: tinylm";
  const TorchSizes sizes = Sizes(config);
  // One server, the model under two names: "tinylm" batched (max_batch 32),
  // "one_tinylm" one sequence per step (every stream still holds its cache and
  // they take turns).
  std::unique_ptr<ChildServer> server = ChildServer::Start(
      {config.sluice_server, "--builtin_models=echo", "--torch_threads=1",
       absl::StrCat("--torch_models=tinylm=", config.tinylm, ",one_tinylm=", config.tinylm),
       "--model_options=one_tinylm:max_batch=1,max_sequences=64"},
      config.work_dir, "torch", /*serve_metrics=*/true);
  if (server == nullptr) {
    report.Add(section, "server", "did not start", "", Verdict::kNotMet);
    return;
  }
  report.Add(section, "setup",
             absl::StrCat("stock server, --torch_threads=1, ", config.tinylm, "; streams of ",
                          sizes.tokens, " tokens after the prompt \"", kPrompt,
                          "\", greedy, started together, ", sizes.reps,
                          " interleaved repetitions; tokens/s from the first start to the last "
                          "end"));
  // Warm-up: TorchScript optimises a method on its first calls.
  RunRound(*server, "tinylm", 8, 32, 0);
  RunRound(*server, "one_tinylm", 2, 32, 0);
  RunTorchThroughput(config, sizes, *server, report, section);
  RunTorchCancel(config, sizes, *server, report, section);
  const bool clean = server->Stop();
  report.Add(section, "server exits after SIGTERM", clean ? "0 (clean)" : "NOT clean", "clean",
             Check(clean));
}

}  // namespace sluice::bench
