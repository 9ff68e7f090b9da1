// sluice_stall_load: many streams that are never read (stuck or hostile
// clients), against the stock server as a child process, while other clients
// read normally. Reports the server's RSS against its bounds, how long until
// every never-read stream was ended as stalled, and whether the readers were
// served throughout; exits non-zero if any of it fails.
//
//   bazel build -c opt //tools/load:sluice_stall_load //service:sluice_server
//   bazel-bin/tools/load/sluice_stall_load --server=bazel-bin/service/sluice_server
//       --streams=2000 --channels=20
//
// Every phase is bounded in time.

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
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
#include "client/sluice_client.h"
#include "grpcpp/create_channel.h"
#include "tests/http_client.h"
#include "tools/load/stall_load.h"
#include "tools/proc_stats.h"
#include "tools/subprocess.h"

ABSL_FLAG(std::string, server, "", "Path to sluice_server (started on a free loopback port).");
ABSL_FLAG(std::string, server_args, "", "Extra flags for the server, space-separated.");
ABSL_FLAG(int, streams, 2000, "Streams that are never read.");
ABSL_FLAG(int, channels, 20, "Client connections they are spread over.");
ABSL_FLAG(std::string, model, "synthetic",
          "synthetic: each stream asks for --output_kib of output with a small request; echo: "
          "the request carries the --output_kib itself (echoed back), so every stream also "
          "holds that much input.");
ABSL_FLAG(int, output_kib, 900, "Output each stream asks for.");
ABSL_FLAG(int, chunk_bytes, 16384, "Echo's chunk size.");
ABSL_FLAG(int, stall_timeout_ms, 1000, "The server's --write_stall_timeout_ms.");
ABSL_FLAG(int64_t, output_budget_bytes, 256 << 20, "The server's --output_budget_bytes.");
ABSL_FLAG(int64_t, transport_memory_bytes, 512 << 20, "The server's --transport_memory_bytes.");
ABSL_FLAG(int64_t, max_request_memory_bytes, 256 << 20, "The server's --max_request_memory_bytes.");
ABSL_FLAG(int, readers, 4, "Client threads reading short streams all the while.");
ABSL_FLAG(int, timeout_s, 120, "Give up if the streams have not all ended by then.");

namespace sluice {
namespace {

void Report(const std::string& what, const std::string& value) {
  std::printf("%-52s %s\n", what.c_str(), value.c_str());
  std::fflush(stdout);
}

// Ended: sluice_calls_ended_total for `model`'s streams with `cause` and
// `stage`, from the server's /metrics; -1 if unreadable.
double Ended(int metrics_port, const std::string& model, const std::string& cause,
             const std::string& stage) {
  absl::StatusOr<testing::HttpResponse> page = testing::HttpGet(metrics_port, "/metrics");
  if (!page.ok()) return -1;
  const std::string series =
      absl::StrCat("sluice_calls_ended_total{model=\"", model, "\",method=\"PredictStream\",",
                   "cause=\"", cause, "\",stage=\"", stage, "\"} ");
  const size_t at = page->body.find(series);
  if (at == std::string::npos) return 0;
  double v = 0;
  const std::string rest = page->body.substr(at + series.size());
  return absl::SimpleAtod(rest.substr(0, rest.find('\n')), &v) ? v : -1;
}

int Run() {
  const int streams = absl::GetFlag(FLAGS_streams);
  const std::string model = absl::GetFlag(FLAGS_model);
  const std::string dir = absl::StrCat("/tmp/sluice_stall_load.", getpid());
  mkdir(dir.c_str(), 0755);
  std::vector<std::string> argv = {
      absl::GetFlag(FLAGS_server),
      "--port=0",
      "--port_file=" + dir + "/port",
      "--metrics_port=0",
      "--metrics_port_file=" + dir + "/metrics_port",
      "--builtin_models=echo,synthetic",
      absl::StrCat("--max_active=", streams + 64),
      absl::StrCat("--queue_capacity=", streams + 64),
      absl::StrCat("--write_stall_timeout_ms=", absl::GetFlag(FLAGS_stall_timeout_ms)),
      absl::StrCat("--output_budget_bytes=", absl::GetFlag(FLAGS_output_budget_bytes)),
      absl::StrCat("--transport_memory_bytes=", absl::GetFlag(FLAGS_transport_memory_bytes)),
      absl::StrCat("--max_request_memory_bytes=", absl::GetFlag(FLAGS_max_request_memory_bytes)),
      absl::StrCat("--max_receive_message_bytes=", (absl::GetFlag(FLAGS_output_kib) + 64) << 10)};
  for (absl::string_view a :
       absl::StrSplit(absl::GetFlag(FLAGS_server_args), ' ', absl::SkipWhitespace())) {
    argv.emplace_back(a);
  }
  absl::StatusOr<std::unique_ptr<Subprocess>> started = Subprocess::Start(argv);
  if (!started.ok()) {
    std::fprintf(stderr, "cannot start server: %s\n", started.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Subprocess> server = *std::move(started);
  absl::StatusOr<std::string> port = WaitForFile(dir + "/port", *server, absl::Seconds(60));
  absl::StatusOr<std::string> metrics =
      WaitForFile(dir + "/metrics_port", *server, absl::Seconds(5));
  int metrics_port = 0;
  if (!port.ok() || !metrics.ok() ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(*metrics), &metrics_port)) {
    std::fprintf(stderr, "server did not start\n%s\n", server->Stderr().c_str());
    return 1;
  }
  const std::string target = absl::StrCat("127.0.0.1:", absl::StripAsciiWhitespace(*port));
  const pid_t pid = server->pid();
  const std::optional<ProcStats> idle = ReadProcStats(pid);
  Report("target", target);
  Report("never-read streams / connections",
         absl::StrCat(streams, " / ", absl::GetFlag(FLAGS_channels), ", each asking ",
                      absl::GetFlag(FLAGS_model), " for ", absl::GetFlag(FLAGS_output_kib),
                      " KiB in chunks of ", absl::GetFlag(FLAGS_chunk_bytes), " B"));
  Report("server bounds",
         absl::StrCat("requests ", FormatMib(absl::GetFlag(FLAGS_max_request_memory_bytes)),
                      ", output budget ", FormatMib(absl::GetFlag(FLAGS_output_budget_bytes)),
                      ", transport ", FormatMib(absl::GetFlag(FLAGS_transport_memory_bytes)),
                      ", stall timeout ", absl::GetFlag(FLAGS_stall_timeout_ms), " ms"));
  if (idle) Report("server RSS idle", FormatMib(idle->rss_bytes));

  // Readers: short synthetic streams, one after another, on their own
  // connections, for as long as the never-read streams are open.
  std::atomic<bool> done{false};
  std::atomic<int> served{0}, failed{0};
  std::atomic<int64_t> slowest_us{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < absl::GetFlag(FLAGS_readers); ++t) {
    readers.emplace_back([&, t] {
      grpc::ChannelArguments args;
      args.SetInt("sluice.stall_load_reader", t);
      SluiceClient client(
          grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
      v1::PredictRequest request;
      request.set_model("synthetic");
      (*request.mutable_parameters())["tokens"].set_int64_param(20);
      for (int i = 0; i < 100'000 && !done; ++i) {
        StreamOptions options;
        options.deadline = absl::Seconds(30);
        const absl::Time start = absl::Now();
        StreamResult r = client.PredictStream(request, options);
        const int64_t us = absl::ToInt64Microseconds(absl::Now() - start);
        int64_t prev = slowest_us.load();
        while (us > prev && !slowest_us.compare_exchange_weak(prev, us)) {
        }
        (r.status.ok() ? served : failed)++;
      }
    });
  }

  StallLoadOptions options;
  options.target = target;
  options.streams = streams;
  options.channels = absl::GetFlag(FLAGS_channels);
  const int64_t output_bytes = static_cast<int64_t>(absl::GetFlag(FLAGS_output_kib)) << 10;
  const int64_t chunk_bytes = absl::GetFlag(FLAGS_chunk_bytes);
  options.request.set_model(model);
  auto& params = *options.request.mutable_parameters();
  params["chunk_bytes"].set_int64_param(chunk_bytes);
  if (model == "echo") {
    options.request.set_input(std::string(static_cast<size_t>(output_bytes), 'x'));
  } else {
    params["tokens"].set_int64_param((output_bytes + chunk_bytes - 1) / chunk_bytes);
  }
  options.request.set_request_id("never-read-");
  options.deadline = absl::Seconds(absl::GetFlag(FLAGS_timeout_s) + 60);
  StallLoad load(options);
  const absl::Time start = absl::Now();
  load.Start();
  Report("streams opened (client side)", absl::FormatDuration(absl::Now() - start));

  // Until the server has ended every one as stalled, watching its RSS.
  bool ok = true;
  int64_t peak_rss = 0;
  double stalled = 0, refused = 0;
  const absl::Time give_up = start + absl::Seconds(absl::GetFlag(FLAGS_timeout_s));
  while (absl::Now() < give_up) {
    if (std::optional<ProcStats> s = ReadProcStats(pid)) {
      peak_rss = std::max(peak_rss, s->rss_bytes);
    }
    stalled = Ended(metrics_port, model, "stalled", "running");
    refused = Ended(metrics_port, model, "rejected", "admission");
    if (stalled + refused >= streams) break;
    absl::SleepFor(absl::Milliseconds(100));  // a sampling period, not a synchronisation
  }
  const absl::Duration took = absl::Now() - start;
  Report("ended as stalled by the server",
         absl::StrCat(static_cast<int64_t>(stalled), " of ", streams, ", the last ",
                      absl::FormatDuration(took), " after the first opened"));
  Report("refused at admission (request memory bound)",
         absl::StrCat(static_cast<int64_t>(refused), " of ", streams));
  if (stalled + refused < streams) ok = false;
  if (std::optional<ProcStats> s = ReadProcStats(pid)) {
    Report("server RSS: peak (sampled) / peak (VmHWM) / now",
           absl::StrCat(FormatMib(peak_rss), " / ", FormatMib(s->peak_rss_bytes), " / ",
                        FormatMib(s->rss_bytes)));
    // Each bound, plus the requests held twice (gRPC's parsed request and
    // the model's copy of its input) and the idle server's own.
    const int64_t bound = absl::GetFlag(FLAGS_output_budget_bytes) +
                          absl::GetFlag(FLAGS_transport_memory_bytes) +
                          2 * absl::GetFlag(FLAGS_max_request_memory_bytes) + (64 << 20);
    Report("RSS bound: output + transport + 2 x requests + 64 MiB", FormatMib(bound));
    if (s->peak_rss_bytes > bound) ok = false;
  }
  done = true;
  for (std::thread& t : readers) t.join();
  Report("reading streams served meanwhile",
         absl::StrCat(served.load(), " ok, ", failed.load(), " failed, slowest ",
                      absl::StrFormat("%.1f ms", slowest_us.load() / 1000.0)));
  if (failed > 0 || served == 0) ok = false;

  load.CancelAll();
  load.WaitDone(absl::Now() + absl::Seconds(30));
  server->Kill(SIGTERM);
  absl::StatusOr<int> status = server->Wait(absl::Seconds(30));
  const bool clean = ExitedCleanly(status);
  Report("server exit after SIGTERM",
         clean ? "0" : absl::StrCat("NOT CLEAN: ", DescribeExit(status)));
  if (!clean) ok = false;
  Report("result", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Opens many streams that are never read against a sluice server and checks that each "
      "is ended as stalled, within bounded memory, while other clients are served.");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_server).empty()) {
    std::fprintf(stderr, "give --server=path/to/sluice_server\n");
    return 2;
  }
  return sluice::Run();
}
