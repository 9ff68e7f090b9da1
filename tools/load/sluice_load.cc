// sluice_load: opens many concurrent streams against a sluice server and
// reports whether each was served and cancellable, and what it cost the
// server (RSS, threads, CPU). With --server it starts the server itself, so
// one command gives the whole figure:
//
//   bazel build -c opt //tools/load:sluice_load //service:sluice_server
//   bazel-bin/tools/load/sluice_load --server=bazel-bin/service/sluice_server
//       --streams=50000 --param token_interval_us=1000000
//
// Every phase is bounded in time; the tool exits non-zero if a stream was not
// served, not cancellable, or the server misbehaved.

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/sluice_client.h"
#include "tools/load/load_processes.h"
#include "tools/load/stream_load.h"
#include "tools/proc_stats.h"
#include "tools/subprocess.h"

ABSL_FLAG(std::string, target, "", "Server to load, host:port (or use --server).");
ABSL_FLAG(std::string, server, "",
          "Path to sluice_server: start it on a free loopback port and measure it.");
ABSL_FLAG(std::string, server_args, "",
          "Extra flags for the started server, space-separated. By default it is given enough "
          "max_active and queue for --streams.");
ABSL_FLAG(int, streams, 1000, "Concurrent streams to open.");
ABSL_FLAG(int, channels, 0,
          "Client connections to spread the streams over; 0: enough for at most 500 streams "
          "per connection, half the server's default --max_concurrent_streams.");
ABSL_FLAG(std::string, model, "synthetic", "Model to call.");
ABSL_FLAG(std::vector<std::string>, param, {},
          "Model parameter name=value (repeatable). Default for synthetic: a slow stream, "
          "tokens=1000000 token_interval_us=1000000.");
ABSL_FLAG(int, hold_ms, 5000,
          "Once every stream has its first chunk, keep them open this long and check that "
          "each receives another chunk (is still served).");
ABSL_FLAG(int, min_hold_ms, 0,
          "Keep the streams open at least this long after they are all open, and measure the "
          "CPU over the whole hold (a steady window, e.g. for a profiler).");
ABSL_FLAG(int, open_timeout_ms, 180000, "Give up if the streams are not all open by then.");
ABSL_FLAG(int, processes, 0,
          "Client processes to spread the streams over; 0: one per 5,000 streams (a gRPC "
          "client's cost per chunk grows with the streams one process holds).");

namespace sluice {
namespace {

std::string Percentile(std::vector<absl::Duration> v, double q) {
  if (v.empty()) return "n/a";
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5));
  return absl::StrFormat("%.1f ms", absl::ToDoubleMilliseconds(v[i]));
}

void Report(const std::string& what, const std::string& value) {
  std::printf("%-44s %s\n", what.c_str(), value.c_str());
  std::fflush(stdout);
}

void ReportServer(pid_t pid, const std::string& when) {
  if (pid <= 0) return;
  if (std::optional<ProcStats> s = ReadProcStats(pid)) {
    Report("server RSS " + when,
           absl::StrCat(FormatMib(s->rss_bytes), " (peak ", FormatMib(s->peak_rss_bytes), ", ",
                        s->threads, " threads)"));
  }
}

int Run(std::vector<std::string> params) {
  const int streams = absl::GetFlag(FLAGS_streams);
  int channels = absl::GetFlag(FLAGS_channels);
  if (channels <= 0) channels = std::max(1, (streams + 499) / 500);
  int processes = absl::GetFlag(FLAGS_processes);
  if (processes <= 0) processes = ProcessesFor(streams);
  // Connections need descriptors, here and in the server (which inherits the limit).
  const int64_t open_files = RaiseOpenFileLimit();
  if (open_files >= 0 && open_files < channels + 64) {
    std::fprintf(stderr, "open file limit %ld is too low for %d connections\n",
                 static_cast<long>(open_files), channels);
    return 2;
  }
  std::string target = absl::GetFlag(FLAGS_target);
  std::unique_ptr<Subprocess> server;
  pid_t server_pid = 0;
  if (!absl::GetFlag(FLAGS_server).empty()) {
    const std::string dir = absl::StrCat("/tmp/sluice_load.", getpid());
    mkdir(dir.c_str(), 0755);
    std::vector<std::string> argv = {
        absl::GetFlag(FLAGS_server),
        "--port=0",
        "--port_file=" + dir + "/port",
        "--metrics_port=0",
        absl::StrCat("--max_active=", streams + 16),
        absl::StrCat("--queue_capacity=", streams + 16),
        absl::StrCat("--transport_memory_bytes=", TransportQuotaFor(streams))};
    for (absl::string_view a :
         absl::StrSplit(absl::GetFlag(FLAGS_server_args), ' ', absl::SkipWhitespace())) {
      argv.emplace_back(a);
    }
    absl::StatusOr<std::unique_ptr<Subprocess>> started = Subprocess::Start(argv);
    if (!started.ok()) {
      std::fprintf(stderr, "cannot start server: %s\n", started.status().ToString().c_str());
      return 1;
    }
    server = *std::move(started);
    absl::StatusOr<std::string> port = WaitForFile(dir + "/port", *server, absl::Seconds(60));
    if (!port.ok()) {
      std::fprintf(stderr, "server did not start: %s\n%s\n", port.status().ToString().c_str(),
                   server->Stderr().c_str());
      return 1;
    }
    target = absl::StrCat("127.0.0.1:", absl::StripAsciiWhitespace(*port));
    server_pid = server->pid();
  }
  if (target.empty()) {
    std::fprintf(stderr, "give --target or --server\n");
    return 2;
  }

  LoadOptions options;
  options.target = target;
  options.streams = streams;
  options.channels = channels;
  options.request.set_model(absl::GetFlag(FLAGS_model));
  options.request.set_request_id("load-");
  if (params.empty() && options.request.model() == "synthetic") {
    params = {"tokens=1000000", "token_interval_us=1000000"};
  }
  for (const std::string& text : params) {
    auto param = ParseParameter(text);
    if (!param.ok()) {
      std::fprintf(stderr, "%s\n", std::string(param.status().message()).c_str());
      return 2;
    }
    (*options.request.mutable_parameters())[param->first] = param->second;
  }

  Report("target", target);
  ReportServer(server_pid, "idle");

  bool ok = true;
  const std::string work_dir = absl::StrCat("/tmp/sluice_load.", getpid(), ".clients");
  const absl::Duration open_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_open_timeout_ms));
  const absl::Duration hold = absl::Milliseconds(absl::GetFlag(FLAGS_hold_ms));
  const absl::Duration min_hold = absl::Milliseconds(absl::GetFlag(FLAGS_min_hold_ms));
  // Each client process gives up by itself (cancels its streams and exits)
  // if this process does not move it on in time.
  const absl::Duration give_up = open_timeout + std::max(hold, min_hold) + absl::Seconds(60);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<LoadProcesses>> started =
      LoadProcesses::Start(options, processes, work_dir, give_up);
  if (!started.ok()) {
    std::fprintf(stderr, "cannot start the client processes: %s\n",
                 started.status().ToString().c_str());
    return 1;
  }
  LoadProcesses& load = **started;
  Report("streams / channels / client processes",
         absl::StrCat(streams, " / ", channels, " / ", load.processes()));
  const bool opened = load.WaitForFirstChunks(start + open_timeout);
  Report("streams with a first chunk", absl::StrCat(load.with_chunks(), " of ", streams, " in ",
                                                    absl::FormatDuration(absl::Now() - start)));
  if (!opened) {
    ok = false;
    Report("FAILED", "not every stream got a chunk");
  }
  const std::vector<absl::Duration> first = load.FirstChunkLatencies();
  Report("first chunk latency p50 / p99 / max",
         absl::StrCat(Percentile(first, 0.5), " / ", Percentile(first, 0.99), " / ",
                      Percentile(first, 1.0)));

  // Hold: every stream must keep being served.
  const std::optional<ProcStats> before_hold =
      server_pid ? ReadProcStats(server_pid) : std::nullopt;
  const ProcStats client_hold_start = load.stats();
  const absl::Time hold_start = absl::Now();
  load.MarkChunks(hold);
  const int served = load.WaitForChunksSinceMark(hold_start + hold + absl::Seconds(5));
  Report("streams served again while all open",
         absl::StrCat(served, " of ", streams, " within ",
                      absl::FormatDuration(absl::Now() - hold_start)));
  if (served < streams) ok = false;
  absl::SleepFor(hold_start + min_hold - absl::Now());
  const absl::Duration held = absl::Now() - hold_start;
  const ProcStats client_hold_end = load.stats();
  std::optional<ProcStats> after_hold = server_pid ? ReadProcStats(server_pid) : std::nullopt;
  ReportServer(server_pid, "with all streams open");

  // Cancel every stream; each must end at once, as CANCELLED.
  const absl::Time cancel_start = absl::Now();
  load.CancelAll();
  const bool ended = load.WaitDone(cancel_start + absl::Seconds(90));
  const absl::Duration cancel_time = absl::Now() - cancel_start;
  const int64_t chunks_held = load.chunks_since_mark();
  if (before_hold && after_hold) {
    const absl::Duration cpu = after_hold->cpu - before_hold->cpu;
    Report("server CPU while serving them",
           absl::StrFormat("%.0f%% of one core over %s, %.1f us per chunk (%d chunks)",
                           100 * absl::FDivDuration(cpu, held), absl::FormatDuration(held),
                           chunks_held > 0 ? absl::ToDoubleMicroseconds(cpu) / chunks_held : 0.0,
                           chunks_held));
  }
  Report("client RSS / CPU while they are served",
         absl::StrFormat(
             "%s / %.0f%% of one core (%d processes)", FormatMib(client_hold_end.rss_bytes),
             100 * absl::FDivDuration(client_hold_end.cpu - client_hold_start.cpu, held),
             load.processes()));
  Report("streams cancelled by the client", absl::StrCat(load.cancelled(), " of ", streams, " in ",
                                                         absl::FormatDuration(cancel_time)));
  if (load.other_errors() > 0) {
    Report("streams that failed", absl::StrCat(load.other_errors(), ": ", load.first_error()));
  }
  if (!ended || load.cancelled() != streams) ok = false;
  if (server_pid) {
    // After the cancels the server has nothing to do: its CPU use drops to
    // nothing (generators released, no pacing timers left).
    const std::optional<ProcStats> a = ReadProcStats(server_pid);
    absl::SleepFor(absl::Seconds(1));
    const std::optional<ProcStats> b = ReadProcStats(server_pid);
    if (a && b) {
      Report("server CPU in the second after the cancels",
             absl::StrFormat("%.1f ms", absl::ToDoubleMilliseconds(b->cpu - a->cpu)));
    }
    ReportServer(server_pid, "after the cancels");
    server->Kill(SIGTERM);
    absl::StatusOr<int> status = server->Wait(absl::Seconds(30));
    const bool clean = ExitedCleanly(status);
    Report("server exit after SIGTERM", clean
                                            ? "0"
                                            : absl::StrCat("NOT CLEAN: ", DescribeExit(status),
                                                           "; stderr in ", server->stderr_path()));
    if (!clean) ok = false;
  }
  Report("result", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  if (std::optional<int> rc = sluice::RunLoadChildIfAsked(argc, argv)) return *rc;
  std::vector<std::string> params = sluice::TakeRepeatedFlag(&argc, argv, "param");
  absl::SetProgramUsageMessage(
      "Opens many concurrent streams against a sluice server and "
      "reports whether each is served and cancellable, and its cost.");
  absl::ParseCommandLine(argc, argv);
  return sluice::Run(std::move(params));
}
