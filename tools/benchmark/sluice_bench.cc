// sluice_bench: the benchmarks behind BENCHMARKS.md. Run through tools/bench,
// which builds with -c opt, runs this, and draws the plot:
//
//   tools/bench            # full run, about 3-5 minutes; writes benchmarks/
//   tools/bench --quick    # about a minute; writes .bench/quick/
//
// Sections: waste after cancel and stop latency, throughput against a raw
// gRPC server, time to first chunk, scale, the abandonment tax, and the
// queue under overload. Every loop is bounded in count and in time; every
// ratio is taken against a baseline measured in the same run, interleaved,
// because the machine this runs on is shared.

#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tools/benchmark/bench_stats.h"
#include "tools/benchmark/report.h"
#include "tools/benchmark/sections.h"
#include "tools/load/load_processes.h"
#include "tools/subprocess.h"

ABSL_FLAG(bool, quick, false, "Smaller sections: about a minute instead of several.");
ABSL_FLAG(std::string, out, "", "Directory for the results (default benchmarks, or .bench/quick).");
ABSL_FLAG(std::string, sluice_server, "bazel-bin/service/sluice_server", "The stock server.");
ABSL_FLAG(std::string, raw_server, "bazel-bin/tools/benchmark/raw_stream_server",
          "The raw gRPC baseline server.");
ABSL_FLAG(std::vector<std::string>, sections,
          std::vector<std::string>({"waste", "throughput", "cost", "first_chunk", "scale",
                                    "abandon", "queue", "batch", "torch"}),
          "Sections to run, comma-separated.");
ABSL_FLAG(std::string, tinylm, "models/tinylm/tinylm.pt", "tinylm, for the torch section.");
ABSL_FLAG(std::string, torch_peer, "tools/benchmark/torch_peer.py",
          "The torch section's peer: a Python loop over the same TorchScript file.");
ABSL_FLAG(uint64_t, seed, 1, "Seed for the random cancel points.");
ABSL_FLAG(std::string, commit, "", "The source revision, for the results' heading.");
ABSL_FLAG(std::string, throughput_only, "",
          "Run only the throughput cases whose label contains this, e.g. \"echo, 64\" (for "
          "profiling one case).");
ABSL_FLAG(std::string, throughput_server_args, "",
          "Extra flags for the sluice server of the throughput and first-chunk sections, "
          "space-separated (e.g. --stream_buffer_chunks=32), to see what a setting changes.");

namespace sluice::bench {

BenchConfig BenchConfig::Full() { return BenchConfig(); }

BenchConfig BenchConfig::Quick() {
  BenchConfig c;
  c.quick = true;
  c.waste_streams = 40;
  c.isolated_cancels = 4;
  c.server_process_cancels = 6;
  c.throughput_tuned_args = {};
  c.concurrent_streams = 32;
  c.concurrent_rounds = 1;
  c.throughput_reps = 2;
  c.throughput_window = absl::Seconds(1);
  c.cost_tokens_1 = 5000;
  c.cost_tokens_64 = 100;
  c.ttfc_serial_calls = 100;
  c.ttfc_rounds_100 = 2;
  c.ttfc_rounds_1000 = 1;
  c.paced_streams = 2000;
  c.scale_streams = 5000;
  c.scale_channels = 20;
  c.scale_hold = absl::Seconds(2);
  c.scale_hold_large = absl::Seconds(2);
  c.abandon_reps = 1;
  c.abandon_stayers = 16;
  c.abandon_tokens = 100;
  c.abandon_reference = false;
  c.queue_capacity = 32;
  c.queue_rejected_calls = 100;
  c.batch_streams = {1, 8, 32};
  c.batch_reps = 1;
  c.batch_window = absl::Seconds(1);
  c.batch_abandon_rounds = 1;
  return c;
}

namespace {

std::string ReadFirstLine(const std::string& path, const std::string& prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, prefix)) return line;
  }
  return "";
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return absl::StrCat(a, " ", b, " ", c);
}

std::string Machine() {
  std::string cpu = ReadFirstLine("/proc/cpuinfo", "model name");
  if (size_t colon = cpu.find(':'); colon != std::string::npos) cpu = cpu.substr(colon + 1);
  utsname u;
  uname(&u);
  return absl::StrCat(absl::StripAsciiWhitespace(cpu), ", ", sysconf(_SC_NPROCESSORS_ONLN),
                      " CPUs online, Linux ", u.release);
}

bool WriteStopLatency(const std::string& path, const PlotData& plot) {
  std::ofstream out(path);
  out << "# stop latency (ms), cumulative fraction; index 0: serial, index 1: concurrent\n";
  for (const std::vector<double>* series :
       {&plot.stop_latency_serial_ms, &plot.stop_latency_concurrent_ms}) {
    std::vector<double> v = *series;
    std::sort(v.begin(), v.end());
    for (size_t i = 0; i < v.size(); ++i) {
      out << v[i] << " " << static_cast<double>(i + 1) / static_cast<double>(v.size()) << "\n";
    }
    out << "\n\n";
  }
  return static_cast<bool>(out);
}

bool WriteThroughput(const std::string& path, const PlotData& plot) {
  std::ofstream out(path);
  out << "# label throughput_ratio_median min max cpu_ratio_median min max\n";
  for (const PlotData::Ratio& r : plot.throughput_ratios) {
    const Summary t = Summarize(r.throughput), c = Summarize(r.cpu);
    // "echo, 64 streams" -> "echo x64": short enough for the axis.
    std::string label = r.label.substr(0, std::min<size_t>(5, r.label.find(',')));
    label += " x" + std::to_string(std::atoi(r.label.c_str() + r.label.find(',') + 1));
    out << "\"" << label << "\" " << t.p50 << " " << t.min << " " << t.max << " " << c.p50 << " "
        << c.min << " " << c.max << "\n";
  }
  return static_cast<bool>(out);
}

// WritePlotLabels: gnuplot variables for the plot's titles.
bool WritePlotLabels(const std::string& path, const PlotData& plot) {
  std::ofstream out(path);
  out << "concurrent_title = \"" << plot.concurrent_title << "\"\n";
  out << "stop_target_ms = " << plot.stop_target_ms << "\n";
  return static_cast<bool>(out);
}

// MachineCosts: what a system call and a hand-off between two threads cost
// here; on a virtual machine both can be many times their bare-metal cost,
// and sluice hands every chunk from a worker thread to gRPC's.
void MachineCosts(Report& report) {
  const std::string section = "Machine";
  constexpr int kSyscalls = 20000;
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < kSyscalls; ++i) syscall(SYS_getppid);
  const double syscall_ns = absl::ToDoubleNanoseconds(absl::Now() - t0) / kSyscalls;

  // Two threads passing a turn back and forth through a mutex and condition
  // variable: each round trip is two wake-ups and two context switches.
  constexpr int kRoundTrips = 5000;
  std::mutex mu;
  std::condition_variable cv;
  int turn = 0;
  std::thread other([&] {
    for (int i = 0; i < kRoundTrips; ++i) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return turn == 1; });
      turn = 0;
      cv.notify_one();
    }
  });
  const absl::Time t1 = absl::Now();
  for (int i = 0; i < kRoundTrips; ++i) {
    std::unique_lock<std::mutex> lock(mu);
    turn = 1;
    cv.notify_one();
    cv.wait(lock, [&] { return turn == 0; });
  }
  const double round_trip_us = absl::ToDoubleMicroseconds(absl::Now() - t1) / kRoundTrips;
  other.join();
  report.Add(section, "a system call (getppid)", FormatNumber(syscall_ns) + " ns");
  report.Add(section, "a round trip between two threads (mutex + condition variable)",
             FormatNumber(round_trip_us) + " us");
}

int Run() {
  BenchConfig config = absl::GetFlag(FLAGS_quick) ? BenchConfig::Quick() : BenchConfig::Full();
  config.seed = absl::GetFlag(FLAGS_seed);
  config.sluice_server = absl::GetFlag(FLAGS_sluice_server);
  config.raw_server = absl::GetFlag(FLAGS_raw_server);
  config.tinylm = absl::GetFlag(FLAGS_tinylm);
  config.torch_peer = absl::GetFlag(FLAGS_torch_peer);
  config.throughput_only = absl::GetFlag(FLAGS_throughput_only);
  config.throughput_server_args =
      absl::StrSplit(absl::GetFlag(FLAGS_throughput_server_args), ' ', absl::SkipWhitespace());
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) out = config.quick ? ".bench/quick" : "benchmarks";
  // Port files, profiles and the load's client directories go to a scratch
  // directory, not beside the results.
  for (const std::string& dir : {std::string(".bench"), std::string(".bench/work"), out}) {
    mkdir(dir.c_str(), 0755);
  }
  config.work_dir = ".bench/work";
  for (const std::string& binary : {config.sluice_server, config.raw_server}) {
    if (access(binary.c_str(), X_OK) != 0) {
      std::fprintf(stderr,
                   "sluice_bench: %s is missing; build it with -c opt first (tools/bench "
                   "does)\n",
                   binary.c_str());
      return 2;
    }
  }
  // The scale section opens many connections, in this process and in the
  // servers it starts (which inherit the limit).
  RaiseOpenFileLimit();
  const std::vector<std::string> sections = absl::GetFlag(FLAGS_sections);
  auto wanted = [&](const std::string& name) {
    return std::find(sections.begin(), sections.end(), name) != sections.end();
  };

  const absl::Time start = absl::Now();
  const std::string load_before = LoadAverage();
  Report report;
  PlotData plot;
  auto progress = [&](const char* what) {
    std::fprintf(stderr, "[%6.1fs] %s\n", absl::ToDoubleSeconds(absl::Now() - start), what);
  };
  MachineCosts(report);
  if (wanted("waste")) {
    progress("waste after cancel and stop latency");
    RunWasteAndStopLatency(config, report, plot);
    progress("waste after cancel, server process");
    RunServerProcessWaste(config, report);
  }
  if (wanted("throughput") || wanted("first_chunk")) {
    progress("throughput and time to first chunk");
    RunThroughputAndFirstChunk(config, wanted("throughput"), wanted("first_chunk"), report, plot);
  }
  if (wanted("cost")) {
    progress("cost per message (instructions, syscalls, context switches)");
    RunCost(config, report);
  }
  if (wanted("scale")) {
    progress("scale");
    RunScale(config, report);
  }
  if (wanted("abandon")) {
    progress("abandonment tax");
    RunAbandonment(config, report);
  }
  if (wanted("queue")) {
    progress("queue under overload");
    RunQueue(config, report);
  }
  if (wanted("batch")) {
    progress("continuous batching");
    RunBatching(config, report);
  }
  if (wanted("torch")) {
    progress("TorchScript: tinylm");
    RunTorch(config, report);
  }
  progress("done");

  const std::string commit = absl::GetFlag(FLAGS_commit);
  const std::string heading = absl::StrFormat(
      "## Results (%s run, %s%s)\n\nMachine: %s. Load average before / after: %s / %s. "
      "Run time: %s.",
      config.quick ? "quick" : "full",
      absl::FormatTime("%Y-%m-%d %H:%M UTC", start, absl::UTCTimeZone()),
      commit.empty() ? "" : ", " + commit, Machine(), load_before, LoadAverage(),
      absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Seconds(1))));
  std::printf("%s\n", heading.c_str());
  report.Print(stdout);
  // The plot's data, only when there is something for each of its panels
  // (the waste and throughput sections ran): tools/bench plots when they are
  // there.
  const std::vector<std::string> plot_files = {out + "/stop_latency.dat", out + "/throughput.dat",
                                               out + "/plot_labels.gp"};
  for (const std::string& stale : plot_files) std::remove(stale.c_str());
  const bool plottable = !plot.stop_latency_serial_ms.empty() &&
                         !plot.stop_latency_concurrent_ms.empty() &&
                         !plot.throughput_ratios.empty();
  bool written = report.WriteMarkdown(out + "/results.md", heading) &&
                 report.WriteTsv(out + "/results.tsv") &&
                 (!plottable ||
                  (WriteStopLatency(plot_files[0], plot) && WriteThroughput(plot_files[1], plot) &&
                   WritePlotLabels(plot_files[2], plot)));
  if (!written) {
    std::fprintf(stderr, "sluice_bench: could not write the results to %s\n", out.c_str());
    return 2;
  }
  std::printf("\nresults: %s/results.md (and .tsv%s); targets not met: %d\n", out.c_str(),
              plottable ? ", *.dat" : "", report.targets_missed());
  return 0;
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
  // The scale section's client processes are this binary (LoadProcesses).
  if (std::optional<int> rc = sluice::RunLoadChildIfAsked(argc, argv)) return *rc;
  absl::SetProgramUsageMessage(
      "Benchmarks sluice: waste after cancel, stop latency, throughput against raw gRPC, time "
      "to first chunk, scale, abandonment tax, queue. Use tools/bench.");
  absl::ParseCommandLine(argc, argv);
  return sluice::bench::Run();
}
