// Sections that run the stock server (and the raw gRPC baseline) as child
// processes: throughput, time to first chunk, scale and the abandonment tax.
// A child's CPU and memory come from its own kernel accounting (/proc), so
// the client's work in this process never counts as the server's.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "tools/benchmark/bench_stats.h"
#include "tools/benchmark/child_server.h"
#include "tools/benchmark/sections.h"
#include "tools/benchmark/stream_probe.h"
#include "tools/load/load_processes.h"
#include "tools/load/stream_load.h"
#include "tools/proc_stats.h"
#include "tools/subprocess.h"

namespace sluice::bench {
namespace {

// Every sluice server the benchmark starts serves no metrics: two of them at
// once would both ask for the default metrics port.
constexpr char kNoMetrics[] = "--metrics_port=-1";

// --- throughput ------------------------------------------------------------

// Workload: what the streams ask for. Both servers are sent the same message
// type and get the same payload size back.
struct Workload {
  std::string name;
  std::function<v1::PredictRequest(int streams)> sluice, raw;
};

std::vector<Workload> ThroughputWorkloads() {
  // echo: the framework with a model that costs nothing but a substring per
  // chunk. Input long enough for any window here (8-byte chunks: 4M of them
  // for one stream, 128k for each of 64), beyond the default 4 MiB request
  // limit: the throughput server is given kThroughputMaxRequest.
  auto echo_input = [](int streams) {
    return static_cast<int64_t>(streams == 1 ? 32'000'000 : 1'024'000);
  };
  Workload echo;
  echo.name = "echo";
  echo.sluice = [echo_input](int streams) {
    v1::PredictRequest r;
    r.set_model("echo");
    r.set_input(std::string(static_cast<size_t>(echo_input(streams)), 'x'));
    (*r.mutable_parameters())["chunk_bytes"].set_int64_param(8);
    return r;
  };
  echo.raw = [echo_input](int streams) {
    return Synthetic({{"tokens", echo_input(streams) / 8}, {"chunk_bytes", 8}});
  };
  // synthetic with token_cost_us=0: "t<i> " chunks; the model still reads
  // the thread CPU clock twice per chunk to account its (zero) cost.
  Workload synthetic;
  synthetic.name = "synthetic";
  synthetic.sluice = [](int) { return Synthetic({{"tokens", 100'000'000}, {"token_cost_us", 0}}); };
  synthetic.raw = [](int) { return Synthetic({{"tokens", 100'000'000}}); };
  return {echo, synthetic};
}

struct Window {
  double messages_per_second = 0;
  double server_cpu_us_per_message = 0;
  double server_switches_per_message = 0;
  bool ok = false;
};

// MeasureThroughput: `streams` streams read as fast as they come; messages
// counted over a window after a warm-up, with the server's CPU and context
// switches over the same window. Invalid if a stream ended within it.
Window MeasureThroughput(const ChildServer& server, const v1::PredictRequest& request, int streams,
                         int channels, const BenchConfig& config) {
  Window w;
  auto conns = MakeChannels(server.target(), channels, absl::Now() + absl::Seconds(10));
  if (conns.empty()) return w;
  std::vector<StreamPlan> plans(streams);
  for (int i = 0; i < streams; ++i) plans[i].request = request;
  StreamSet set(conns);
  set.Start(std::move(plans));
  if (!set.WaitFirstChunks(streams, absl::Now() + absl::Seconds(10))) return w;
  absl::SleepFor(config.throughput_warmup);
  const int64_t c0 = set.chunks();
  const absl::Duration cpu0 = server.cpu();
  const int64_t switches0 = ReadContextSwitches(server.pid());
  const absl::Time t0 = absl::Now();
  absl::SleepFor(config.throughput_window);
  const int64_t c1 = set.chunks();
  const absl::Duration cpu1 = server.cpu();
  const int64_t switches1 = ReadContextSwitches(server.pid());
  const absl::Time t1 = absl::Now();
  set.CancelAll();
  set.WaitDone(absl::Now() + absl::Seconds(10));
  for (const StreamRecord& r : set.records()) {
    if (r.ended < t1 && r.code == grpc::StatusCode::OK) return w;  // ran out of input
  }
  const double messages = static_cast<double>(c1 - c0);
  if (messages <= 0) return w;
  w.messages_per_second = messages / absl::ToDoubleSeconds(t1 - t0);
  w.server_cpu_us_per_message = absl::ToDoubleMicroseconds(cpu1 - cpu0) / messages;
  w.server_switches_per_message = static_cast<double>(switches1 - switches0) / messages;
  w.ok = true;
  return w;
}

// --- time to first chunk ----------------------------------------------------

// FirstChunkTimes: `rounds` bursts of `concurrency` one-chunk streams (or,
// at concurrency 1, `rounds` calls one after another); each stream's time
// from its start to its first chunk, in ms.
std::vector<double> FirstChunkTimes(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                                    int concurrency, int rounds) {
  std::vector<double> out;
  for (int round = 0; round < rounds; ++round) {
    std::vector<StreamPlan> plans(concurrency);
    for (int i = 0; i < concurrency; ++i) {
      plans[i].request = Synthetic({{"tokens", 1}, {"token_cost_us", 0}});
    }
    StreamSet set(channels);
    set.Start(std::move(plans));
    set.WaitDone(absl::Now() + absl::Seconds(60));
    for (const StreamRecord& r : set.records()) {
      if (r.first_chunk != absl::InfinitePast()) {
        out.push_back(absl::ToDoubleMilliseconds(r.first_chunk - r.started));
      }
    }
  }
  return out;
}

}  // namespace

void RunThroughputAndFirstChunk(const BenchConfig& config, bool throughput, bool first_chunk,
                                Report& report, PlotData& plot) {
  std::vector<std::string> sluice_argv = {config.sluice_server, kNoMetrics, "--max_active=2100",
                                          "--queue_capacity=2100",
                                          "--max_receive_message_bytes=40000000"};
  sluice_argv.insert(sluice_argv.end(), config.throughput_server_args.begin(),
                     config.throughput_server_args.end());
  std::unique_ptr<ChildServer> sluice = ChildServer::Start(sluice_argv, config.work_dir, "sluice");
  std::unique_ptr<ChildServer> raw =
      ChildServer::Start({config.raw_server}, config.work_dir, "raw");
  if (sluice == nullptr || raw == nullptr) {
    report.Add("Throughput", "servers", "did not start");
    return;
  }

  if (throughput) {
    const std::string section = "Throughput (zero-cost chunks)";
    report.Add(
        section, "setup",
        absl::StrFormat("stock sluice_server (2 workers, buffer 64 chunks) vs raw_stream_server; "
                        "%d interleaved repetitions of a %s window",
                        config.throughput_reps, absl::FormatDuration(config.throughput_window)));
    std::unique_ptr<ChildServer> tuned;
    if (!config.throughput_tuned_args.empty()) {
      std::vector<std::string> argv = sluice_argv;
      argv.insert(argv.end(), config.throughput_tuned_args.begin(),
                  config.throughput_tuned_args.end());
      tuned = ChildServer::Start(argv, config.work_dir, "tuned");
      if (tuned == nullptr) {
        report.Add(section,
                   absl::StrCat("sluice with ", absl::StrJoin(config.throughput_tuned_args, " ")),
                   "did not start");
      }
    }
    struct Case {
      const Workload* workload;
      int streams, channels;
      ChildServer* server;
      std::string suffix;
    };
    const std::vector<Workload> workloads = ThroughputWorkloads();
    std::vector<Case> cases;
    for (const Workload& workload : workloads) {
      cases.push_back({&workload, 1, 1, sluice.get(), ""});
      cases.push_back({&workload, 64, 8, sluice.get(), ""});
    }
    if (tuned != nullptr) {
      const std::string suffix =
          absl::StrCat(" (", absl::StrJoin(config.throughput_tuned_args, " "), ")");
      cases.push_back({&workloads[0], 1, 1, tuned.get(), suffix});
      cases.push_back({&workloads[0], 64, 8, tuned.get(), suffix});
    }
    for (const Case& c : cases) {
      const Workload& workload = *c.workload;
      const int streams = c.streams, channels = c.channels;
      const bool judged = c.suffix.empty();  // the defaults are what the target is about
      const std::string label = absl::StrCat(workload.name, ", ", streams,
                                             streams == 1 ? " stream" : " streams", c.suffix);
      if (!absl::StrContains(label, config.throughput_only)) continue;
      const v1::PredictRequest sluice_request = workload.sluice(streams);
      const v1::PredictRequest raw_request = workload.raw(streams);
      std::vector<double> sluice_rate, raw_rate, sluice_cpu, raw_cpu, sluice_sw, raw_sw;
      for (int rep = 0; rep < config.throughput_reps; ++rep) {
        // Alternate which server goes first, so drift on a shared machine
        // does not favour one.
        Window s, r;
        if (rep % 2 == 0) {
          r = MeasureThroughput(*raw, raw_request, streams, channels, config);
          s = MeasureThroughput(*c.server, sluice_request, streams, channels, config);
        } else {
          s = MeasureThroughput(*c.server, sluice_request, streams, channels, config);
          r = MeasureThroughput(*raw, raw_request, streams, channels, config);
        }
        if (!s.ok || !r.ok) continue;
        sluice_rate.push_back(s.messages_per_second);
        raw_rate.push_back(r.messages_per_second);
        sluice_cpu.push_back(s.server_cpu_us_per_message);
        raw_cpu.push_back(r.server_cpu_us_per_message);
        sluice_sw.push_back(s.server_switches_per_message);
        raw_sw.push_back(r.server_switches_per_message);
      }
      const std::vector<double> ratio = Ratios(sluice_rate, raw_rate);
      const std::vector<double> cpu_ratio = Ratios(raw_cpu, sluice_cpu);
      report.Add(section, label + ": messages/s, sluice / raw",
                 absl::StrCat(FormatSpread(sluice_rate), " / ", FormatSpread(raw_rate)));
      if (judged) {
        report.Add(section, label + ": ratio sluice/raw, per repetition", FormatSpread(ratio, "x"),
                   ">= 1.0x", Check(!ratio.empty() && Summarize(ratio).p50 >= 1.0));
        report.Add(
            section, label + ": server CPU per message, sluice / raw",
            absl::StrCat(FormatSpread(sluice_cpu, " us"), " / ", FormatSpread(raw_cpu, " us")),
            "<= raw",
            Check(!sluice_cpu.empty() && Summarize(sluice_cpu).p50 <= Summarize(raw_cpu).p50));
      } else {
        report.Add(section, label + ": ratio sluice/raw, per repetition", FormatSpread(ratio, "x"));
        report.Add(
            section, label + ": server CPU per message, sluice / raw",
            absl::StrCat(FormatSpread(sluice_cpu, " us"), " / ", FormatSpread(raw_cpu, " us")));
      }
      report.Add(section, label + ": server context switches per message, sluice / raw",
                 absl::StrCat(FormatSpread(sluice_sw), " / ", FormatSpread(raw_sw)));
      if (judged) plot.throughput_ratios.push_back({label, ratio, cpu_ratio});
    }
    if (tuned != nullptr) tuned->Stop();
  }

  if (first_chunk) {
    const std::string section = "Time to first chunk (zero-cost model)";
    report.Add(section, "setup",
               "client start of call -> first chunk; one-chunk streams started together; "
               "raw gRPC alongside for comparison");
    struct Level {
      int concurrency, rounds;
    };
    const std::vector<Level> levels = {{1, config.ttfc_serial_calls},
                                       {100, config.ttfc_rounds_100},
                                       {1000, config.ttfc_rounds_1000}};
    for (const Level& level : levels) {
      const int channels = std::max(1, level.concurrency / 100);
      auto sluice_channels =
          MakeChannels(sluice->target(), channels, absl::Now() + absl::Seconds(10));
      auto raw_channels = MakeChannels(raw->target(), channels, absl::Now() + absl::Seconds(10));
      if (sluice_channels.empty() || raw_channels.empty()) continue;
      // Interleave in blocks, so both see the same machine.
      const int blocks = std::min(level.rounds, 6);
      std::vector<double> sluice_ms, raw_ms;
      for (int b = 0; b < blocks; ++b) {
        const int rounds = level.rounds / blocks + (b < level.rounds % blocks ? 1 : 0);
        for (int which = 0; which < 2; ++which) {
          const bool sluice_turn = (which == 0) == (b % 2 == 0);
          std::vector<double> t = FirstChunkTimes(sluice_turn ? sluice_channels : raw_channels,
                                                  level.concurrency, rounds);
          (sluice_turn ? sluice_ms : raw_ms)
              .insert((sluice_turn ? sluice_ms : raw_ms).end(), t.begin(), t.end());
        }
      }
      const std::string label = absl::StrCat("at ", level.concurrency, " concurrent");
      report.Add(section, label + ": sluice p50 / p99",
                 P50P99(sluice_ms, " ms") + absl::StrCat(" (", sluice_ms.size(), " streams)"));
      report.Add(section, label + ": raw gRPC p50 / p99", P50P99(raw_ms, " ms"));
      const Summary s = Summarize(sluice_ms), r = Summarize(raw_ms);
      const double p50_ratio = r.p50 > 0 ? s.p50 / r.p50 : 0;
      const double p99_ratio = r.p99 > 0 ? s.p99 / r.p99 : 0;
      report.Add(section, label + ": sluice / raw gRPC, p50 / p99",
                 absl::StrCat(FormatNumber(p50_ratio), "x / ", FormatNumber(p99_ratio), "x"),
                 "<= 1.2x", Check(s.n > 0 && r.n > 0 && p50_ratio <= 1.2 && p99_ratio <= 1.2));
    }
  }
  sluice->Stop();
  raw->Stop();
}

// The sluice server's model workers are named "sluice:<model>".
constexpr absl::string_view kWorkerThreadPrefix = "sluice:";

void RunServerProcessWaste(const BenchConfig& config, Report& report) {
  const std::string section = "Waste after cancel, server process";
  std::unique_ptr<ChildServer> server =
      ChildServer::Start({config.sluice_server, kNoMetrics}, config.work_dir, "waste");
  if (server == nullptr) {
    report.Add(section, "server", "did not start");
    return;
  }
  auto channels = MakeChannels(server->target(), 1, absl::Now() + absl::Seconds(10));
  if (channels.empty()) {
    report.Add(section, "server", "no connection");
    server->Stop();
    return;
  }
  // Each window runs from a mark to 400 ms after it (which takes in the
  // server's second look at a cancelled call's connection, 250 ms on), on
  // the server's own clocks: its threads' time on a CPU. The mark is the
  // client's cancel at chunk k of a long stream, or, for the control, the
  // last chunk of a stream of exactly k chunks that ends normally. Both
  // windows take in the end of a stream; the cancelled one also the chunk
  // the model was making when the cancel came.
  std::mt19937_64 rng(config.seed);
  std::uniform_int_distribution<int64_t> cancel_at(1, config.cancel_at_max);
  struct Cpu {
    double all_us = 0, workers_us = 0;
  };
  auto window = [&](int64_t k, bool cancel, const std::string& id) -> std::optional<Cpu> {
    std::optional<ThreadsRunTime> at_mark;
    absl::Time mark_time = absl::InfinitePast();
    {
      StreamSet set(channels, [&](int) {
        at_mark = ReadThreadsRunTime(server->pid(), kWorkerThreadPrefix);
        mark_time = absl::Now();
      });
      StreamPlan plan;
      plan.request = Synthetic({{"tokens", cancel ? config.waste_tokens : k},
                                {"token_cost_us", config.waste_token_cost_us}},
                               id);
      plan.cancel_after_chunks = k;
      plan.mark_only = !cancel;
      set.Start({plan});
      if (!set.WaitDone(absl::Now() + absl::Seconds(30))) return std::nullopt;
    }
    if (!at_mark.has_value()) return std::nullopt;
    absl::SleepFor(mark_time + absl::Milliseconds(400) - absl::Now());
    const std::optional<ThreadsRunTime> after =
        ReadThreadsRunTime(server->pid(), kWorkerThreadPrefix);
    if (!after.has_value()) return std::nullopt;
    return Cpu{absl::ToDoubleMicroseconds(after->all - at_mark->all),
               absl::ToDoubleMicroseconds(after->named - at_mark->named)};
  };
  std::vector<double> cancelled_us, control_us, cancelled_workers_us, control_workers_us;
  for (int i = 0; i < config.server_process_cancels; ++i) {
    const int64_t k = cancel_at(rng);
    std::optional<Cpu> cancelled = window(k, /*cancel=*/true, absl::StrCat("proc-cancel-", i));
    std::optional<Cpu> control = window(k, /*cancel=*/false, absl::StrCat("proc-control-", i));
    if (cancelled.has_value() && control.has_value()) {
      cancelled_us.push_back(cancelled->all_us);
      control_us.push_back(control->all_us);
      cancelled_workers_us.push_back(cancelled->workers_us);
      control_workers_us.push_back(control->workers_us);
    }
  }
  const std::optional<ProcStats> end = server->stats();
  const bool clean = server->Stop();
  report.Add(
      section, "setup",
      absl::StrCat("stock sluice_server as a child process; its threads' time on a CPU "
                   "(/proc/<pid>/task/*/schedstat); synthetic, token_cost_us=",
                   config.waste_token_cost_us, ", cancel at chunk 1..", config.cancel_at_max));
  if (cancelled_us.empty()) {
    report.Add(section, "windows measured", "none", "all", Check(false));
    return;
  }
  const Summary cancelled = Summarize(cancelled_us), control = Summarize(control_us);
  report.Add(section, "server CPU in the 400 ms after a client's cancel, p50 / max",
             absl::StrCat(FormatNumber(cancelled.p50), " / ", FormatNumber(cancelled.max), " us (",
                          cancelled_us.size(), " cancels)"));
  report.Add(section, "control: in the 400 ms after the last chunk of a normal end, p50 / max",
             absl::StrCat(FormatNumber(control.p50), " / ", FormatNumber(control.max), " us"));
  report.Add(section, "what a cancel costs the server beyond a normal end, p50",
             absl::StrCat(FormatNumber(cancelled.p50 - control.p50),
                          " us (the chunk in flight, the cancel's handling, two looks at the "
                          "connection)"),
             absl::StrCat("<= one chunk (", config.waste_token_cost_us, " us)"),
             Check(cancelled.p50 - control.p50 <= static_cast<double>(config.waste_token_cost_us)));
  const double workers_extra =
      Summarize(cancelled_workers_us).p50 - Summarize(control_workers_us).p50;
  report.Add(section, "of which: the model's worker threads (the chunk in flight), p50",
             absl::StrCat(FormatNumber(workers_extra), " us"));
  report.Add(section, "of which: every other thread (gRPC's, which handle the cancel), p50",
             absl::StrCat(FormatNumber(cancelled.p50 - control.p50 - workers_extra), " us"));
  report.Add(section, "work the cancelled streams would still have done",
             absl::StrCat(
                 FormatNumber(absl::ToDoubleSeconds(absl::Microseconds(config.waste_token_cost_us) *
                                                    static_cast<double>(config.waste_tokens) *
                                                    static_cast<double>(cancelled_us.size()))),
                 " s of CPU, at most (each had up to ", config.waste_tokens, " tokens left)"));
  if (end.has_value()) {
    report.Add(section, "server RSS at the end", FormatMib(end->rss_bytes));
  }
  report.Add(section, "server exit after SIGTERM", clean ? "0 (clean)" : "NOT clean", "clean",
             Check(clean));
}

namespace {

// ManyStreams: `streams` paced streams (a chunk a second, paced without
// holding a thread) over `channels` connections to a stock server: opened at
// once, held while each must be served again, then all cancelled. With
// `paced_targets`, judged on what an idle stream costs (CPU per chunk, memory
// per stream); otherwise on scale (all served and cancellable, RSS bound).
void ManyStreams(const BenchConfig& config, Report& report, const std::string& section, int streams,
                 bool paced_targets) {
  // At scale the server may fall behind the pacing (see BENCHMARKS.md): each
  // stream is given longer to be served again.
  const absl::Duration hold = paced_targets ? config.scale_hold : config.scale_hold_large;
  std::unique_ptr<ChildServer> server = ChildServer::Start(
      {config.sluice_server, kNoMetrics, absl::StrCat("--max_active=", streams + 16),
       absl::StrCat("--queue_capacity=", streams + 16),
       absl::StrCat("--transport_memory_bytes=", TransportQuotaFor(streams))},
      config.work_dir, "scale");
  if (server == nullptr) {
    report.Add(section, "server", "did not start");
    return;
  }
  const std::optional<ProcStats> idle = server->stats();
  LoadOptions options;
  options.target = server->target();
  options.streams = streams;
  options.channels = config.scale_channels;
  options.request = Synthetic({{"tokens", 1'000'000}, {"token_interval_us", 1'000'000}}, "scale-");
  // A gRPC client's cost per chunk grows with the streams one process holds
  // (see tools/load/load_processes.h).
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<LoadProcesses>> started =
      LoadProcesses::Start(options, ProcessesFor(streams), config.work_dir + "/scale-clients",
                           config.scale_open_timeout + hold + absl::Seconds(90));
  if (!started.ok()) {
    report.Add(section, "client processes", started.status().ToString());
    server->Stop();
    return;
  }
  std::unique_ptr<LoadProcesses> load = *std::move(started);
  const bool opened = load->WaitForFirstChunks(start + config.scale_open_timeout);
  const absl::Duration open_time = absl::Now() - start;
  const std::vector<double> first = Milliseconds(load->FirstChunkLatencies());

  const absl::Duration cpu0 = server->cpu();
  const ProcStats client0 = load->stats();
  const absl::Time hold_start = absl::Now();
  load->MarkChunks(hold);
  const int served = load->WaitForChunksSinceMark(hold_start + hold + absl::Seconds(5));
  absl::SleepFor(hold_start + hold - absl::Now());  // a whole window of CPU
  const absl::Duration held = absl::Now() - hold_start;
  const absl::Duration cpu1 = server->cpu();
  const ProcStats client1 = load->stats();
  const std::optional<ProcStats> open = server->stats();

  const absl::Time cancel_start = absl::Now();
  load->CancelAll();
  const bool ended = load->WaitDone(cancel_start + absl::Seconds(90));
  const absl::Duration cancel_time = absl::Now() - cancel_start;
  const int64_t chunks_held = load->chunks_since_mark();
  const absl::Duration cpu2 = server->cpu();
  absl::SleepFor(absl::Seconds(1));
  const absl::Duration cpu3 = server->cpu();
  const std::optional<ProcStats> after = server->stats();
  const int with_chunks = load->with_chunks(), cancelled = load->cancelled();
  const int processes = load->processes();  // as started (at most one per connection)
  load.reset();
  const bool clean = server->Stop();

  report.Add(section, "setup",
             absl::StrFormat("%d streams of 1 chunk/s (synthetic token_interval_us=1000000) over "
                             "%d connections (%d per connection) from %d client processes, "
                             "stock server",
                             streams, options.channels, streams / options.channels, processes));
  report.Add(section, "streams opened with a first chunk",
             absl::StrFormat("%d of %d in %s", with_chunks, streams,
                             absl::FormatDuration(absl::Trunc(open_time, absl::Milliseconds(1)))),
             "all", Check(opened));
  report.Add(section, "first chunk p50 / p99 (all opened at once)", P50P99(first, " ms"));
  report.Add(section, "streams served again while all open",
             absl::StrFormat("%d of %d within %s", served, streams,
                             absl::FormatDuration(absl::Trunc(held, absl::Milliseconds(1)))),
             "all", Check(served == streams));
  const double per_stream_kib =
      idle && open ? (open->rss_bytes - idle->rss_bytes) / 1024.0 / streams : 0;
  if (idle && open) {
    const std::string rss =
        absl::StrCat(FormatMib(idle->rss_bytes), " / ", FormatMib(open->rss_bytes), " (",
                     FormatNumber(per_stream_kib), " KiB per stream)");
    if (paced_targets) {
      report.Add(section, "server RSS idle / all open", rss, "<= 15 KiB per stream",
                 Check(per_stream_kib <= 15));
    } else {
      report.Add(section, "server RSS idle / all open", rss, "< 1 GiB",
                 Check(open->rss_bytes < (int64_t{1} << 30)));
    }
    report.Add(section, "server threads idle / all open",
               absl::StrCat(idle->threads, " / ", open->threads));
  }
  const double chunks = static_cast<double>(chunks_held);
  const double cpu_per_chunk_us = chunks > 0 ? absl::ToDoubleMicroseconds(cpu1 - cpu0) / chunks : 0;
  report.Add(section, "server CPU while serving them",
             absl::StrFormat("%s%% of one core, %s chunks/s",
                             FormatNumber(100 * absl::FDivDuration(cpu1 - cpu0, held)),
                             FormatNumber(chunks / absl::ToDoubleSeconds(held))));
  if (paced_targets) {
    report.Add(section, "server CPU per chunk", absl::StrCat(FormatNumber(cpu_per_chunk_us), " us"),
               absl::StrCat("<= ", FormatNumber(config.paced_cpu_per_chunk_target_us), " us"),
               Check(chunks > 0 && cpu_per_chunk_us <= config.paced_cpu_per_chunk_target_us));
  } else {
    report.Add(section, "server CPU per chunk",
               absl::StrCat(FormatNumber(cpu_per_chunk_us), " us"));
  }
  report.Add(section, "client processes' CPU while they are served / their RSS",
             absl::StrCat(FormatNumber(100 * absl::FDivDuration(client1.cpu - client0.cpu, held)),
                          "% of one core / ", FormatMib(client1.rss_bytes)));
  report.Add(section, "all cancelled by the client",
             absl::StrFormat("%d of %d in %s", cancelled, streams,
                             absl::FormatDuration(absl::Trunc(cancel_time, absl::Milliseconds(1)))),
             "all", Check(ended && cancelled == streams));
  report.Add(section, "server CPU in the second after the cancels",
             absl::StrCat(FormatNumber(absl::ToDoubleMilliseconds(cpu3 - cpu2)), " ms"));
  if (after) report.Add(section, "server peak RSS", FormatMib(after->peak_rss_bytes));
  report.Add(section, "server exit after SIGTERM", clean ? "0 (clean)" : "NOT clean", "clean",
             Check(clean));
}

}  // namespace

void RunScale(const BenchConfig& config, Report& report) {
  ManyStreams(config, report, "Paced streams", config.paced_streams, /*paced_targets=*/true);
  ManyStreams(config, report, "Scale", config.scale_streams, /*paced_targets=*/false);
}

void RunAbandonment(const BenchConfig& config, Report& report) {
  const std::string section = "Abandonment tax";
  std::unique_ptr<ChildServer> server = ChildServer::Start(
      {config.sluice_server, kNoMetrics, "--workers=2"}, config.work_dir, "abandon");
  if (server == nullptr) {
    report.Add(section, "server", "did not start");
    return;
  }
  auto channels = MakeChannels(server->target(), 8, absl::Now() + absl::Seconds(10));
  if (channels.empty()) {
    report.Add(section, "server", "could not connect");
    return;
  }
  const int n = config.abandon_stayers;
  std::mt19937_64 rng(config.seed + 7);
  std::uniform_int_distribution<int64_t> leave_at(1, config.abandon_leave_at_max);
  std::vector<int64_t> k(n);
  for (int64_t& x : k) x = leave_at(rng);

  enum class Condition { kNobodyLeaves, kHalfLeave, kNeverStopped };
  struct Outcome {
    std::vector<double> ttfc_ms;  // stayers
    double stayer_chunks_per_second = 0;
    double server_cpu_s = 0;
    bool ok = true;
  };
  auto run = [&](Condition condition) {
    // Stayers and the others alternate in arrival order. The others receive
    // k[i] chunks in every condition: with nobody leaving they asked for just
    // that many and finished; with half leaving they asked for the whole
    // output and cancelled on the k[i]-th chunk; in the reference, their
    // whole output is made, as by a server that never stops abandoned work.
    std::vector<StreamPlan> plans;
    const v1::PredictRequest stay = Synthetic(
        {{"tokens", config.abandon_tokens}, {"token_cost_us", config.abandon_token_cost_us}});
    for (int i = 0; i < n; ++i) {
      StreamPlan stayer;
      stayer.request = stay;
      plans.push_back(stayer);
      StreamPlan other;
      other.request = Synthetic(
          {{"tokens", condition == Condition::kNobodyLeaves ? k[i] : config.abandon_tokens},
           {"token_cost_us", config.abandon_token_cost_us}});
      if (condition == Condition::kHalfLeave) other.cancel_after_chunks = k[i];
      plans.push_back(other);
    }
    Outcome out;
    const absl::Duration cpu0 = server->cpu();
    StreamSet set(channels);
    set.Start(std::move(plans), config.abandon_arrival_spacing);
    out.ok = set.WaitDone(absl::Now() + absl::Seconds(120));
    absl::SleepFor(absl::Milliseconds(50));  // the server's last bookkeeping
    out.server_cpu_s = absl::ToDoubleSeconds(server->cpu() - cpu0);
    const std::vector<StreamRecord> records = set.records();
    absl::Time first_start = absl::InfiniteFuture(), last_end = absl::InfinitePast();
    int64_t chunks = 0;
    for (int i = 0; i < 2 * n; i += 2) {
      const StreamRecord& r = records[i];
      if (r.code != grpc::StatusCode::OK || r.chunks != config.abandon_tokens) out.ok = false;
      if (r.first_chunk != absl::InfinitePast()) {
        out.ttfc_ms.push_back(absl::ToDoubleMilliseconds(r.first_chunk - r.started));
      }
      first_start = std::min(first_start, r.started);
      last_end = std::max(last_end, r.ended);
      chunks += r.chunks;
    }
    out.stayer_chunks_per_second =
        static_cast<double>(chunks) / absl::ToDoubleSeconds(last_end - first_start);
    return out;
  };

  run(Condition::kNobodyLeaves);  // warm-up (connections, threads, allocator), not counted
  std::vector<double> ttfc_a, ttfc_b, ttfc_c, tput_a, tput_b, tput_c, cpu_a, cpu_b, cpu_c;
  bool all_ok = true;
  const absl::Time deadline = absl::Now() + absl::Seconds(config.quick ? 60 : 200);
  for (int rep = 0; rep < config.abandon_reps && absl::Now() < deadline; ++rep) {
    std::vector<Condition> order = {Condition::kNobodyLeaves, Condition::kHalfLeave};
    if (rep % 2 == 1) std::swap(order[0], order[1]);
    if (config.abandon_reference) order.push_back(Condition::kNeverStopped);
    for (Condition c : order) {
      Outcome o = run(c);
      all_ok &= o.ok;
      auto& ttfc = c == Condition::kNobodyLeaves ? ttfc_a
                   : c == Condition::kHalfLeave  ? ttfc_b
                                                 : ttfc_c;
      auto& tput = c == Condition::kNobodyLeaves ? tput_a
                   : c == Condition::kHalfLeave  ? tput_b
                                                 : tput_c;
      auto& cpu = c == Condition::kNobodyLeaves ? cpu_a
                  : c == Condition::kHalfLeave  ? cpu_b
                                                : cpu_c;
      ttfc.insert(ttfc.end(), o.ttfc_ms.begin(), o.ttfc_ms.end());
      tput.push_back(o.stayer_chunks_per_second);
      cpu.push_back(o.server_cpu_s);
    }
  }
  server->Stop();

  report.Add(section, "setup",
             absl::StrFormat("2 workers; %d stayers (tokens=%d, token_cost_us=%d) arrive "
                             "alternating with %d others who get 1..%d chunks, one every %s; "
                             "%d repetitions",
                             n, config.abandon_tokens, config.abandon_token_cost_us, n,
                             config.abandon_leave_at_max,
                             absl::FormatDuration(config.abandon_arrival_spacing),
                             static_cast<int>(tput_a.size())));
  if (!all_ok) report.Add(section, "WARNING", "a stayer did not complete all its chunks");
  const Summary a = Summarize(ttfc_a), b = Summarize(ttfc_b);
  report.Add(section, "stayers' first chunk p50 / p99: nobody leaves", P50P99(ttfc_a, " ms"));
  report.Add(section, "stayers' first chunk p50 / p99: half leave", P50P99(ttfc_b, " ms"));
  const double ttfc_p50_ratio = a.p50 > 0 ? b.p50 / a.p50 : 0;
  const double ttfc_p99_ratio = a.p99 > 0 ? b.p99 / a.p99 : 0;
  report.Add(section, "stayers' first chunk, half leave / nobody leaves, p50 / p99",
             absl::StrCat(FormatNumber(ttfc_p50_ratio), "x / ", FormatNumber(ttfc_p99_ratio), "x"),
             "<= 1.1x", Check(a.n > 0 && ttfc_p50_ratio <= 1.1 && ttfc_p99_ratio <= 1.1));
  report.Add(section, "stayers' chunks/s: nobody leaves / half leave",
             absl::StrCat(FormatSpread(tput_a), " / ", FormatSpread(tput_b)));
  const std::vector<double> slowdown = Ratios(tput_a, tput_b);
  report.Add(section, "stayers' slowdown when half leave (chunks/s ratio), per repetition",
             FormatSpread(slowdown, "x"), "<= 1.1x",
             Check(!slowdown.empty() && Summarize(slowdown).p50 <= 1.1));
  report.Add(section, "server CPU per run: nobody leaves / half leave",
             absl::StrCat(FormatSpread(cpu_a, " s"), " / ", FormatSpread(cpu_b, " s")));
  if (!tput_c.empty()) {
    report.Add(section, "reference, the leavers' work goes on: stayers' first chunk p50 / p99",
               P50P99(ttfc_c, " ms"));
    report.Add(
        section, "reference: stayers' slowdown, server CPU per run",
        absl::StrCat(FormatSpread(Ratios(tput_a, tput_c), "x"), ", ", FormatSpread(cpu_c, " s")));
  }
}

}  // namespace sluice::bench
