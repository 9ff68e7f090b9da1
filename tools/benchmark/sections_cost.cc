// The cost section: what one message costs the server in counts that do not
// move with the machine's load: instructions (callgrind), system calls (perf's
// raw_syscalls tracepoint) and context switches (the kernel's per-thread
// counters), over a fixed number of messages, for sluice and for the raw gRPC
// server in the same run.

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tools/benchmark/bench_stats.h"
#include "tools/benchmark/child_server.h"
#include "tools/benchmark/sections.h"
#include "tools/benchmark/stream_probe.h"
#include "tools/proc_stats.h"
#include "tools/subprocess.h"

namespace sluice::bench {
namespace {

// CostCase: `streams` streams of `tokens` zero-cost chunks each, over
// `channels` connections.
struct CostCase {
  std::string label;
  int streams, channels;
  int64_t tokens;
};

// Counts: per message, over one case.
struct Counts {
  std::optional<double> instructions, syscalls, switches;
};

// RunCase: the case's streams, read to the end; the number of messages the
// server sent (each stream's chunks and its final message), or nullopt if a
// stream did not end OK.
std::optional<int64_t> RunCase(const std::string& target, const CostCase& c, bool sluice,
                               absl::Duration timeout) {
  auto channels = MakeChannels(target, c.channels, absl::Now() + timeout);
  if (channels.empty()) return std::nullopt;
  std::vector<StreamPlan> plans(c.streams);
  for (StreamPlan& plan : plans) {
    plan.request = sluice ? Synthetic({{"tokens", c.tokens}, {"token_cost_us", 0}})
                          : Synthetic({{"tokens", c.tokens}});
  }
  StreamSet set(channels);
  set.Start(std::move(plans));
  if (!set.WaitDone(absl::Now() + timeout)) return std::nullopt;
  for (const StreamRecord& r : set.records()) {
    if (r.code != grpc::StatusCode::OK || r.chunks != c.tokens) return std::nullopt;
  }
  return static_cast<int64_t>(c.streams) * (c.tokens + 1);
}

// Warm: one short stream, so that connections, threads and the allocator
// are warm before a measured case.
void Warm(const std::string& target, bool sluice) {
  RunCase(target, CostCase{"warm-up", 1, 1, 200}, sluice, absl::Seconds(60));
}

// InPath: the path of the program `name` in $PATH, or "" (Subprocess runs
// paths, not names).
std::string InPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin", ':')) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

bool RunQuietly(std::vector<std::string> argv) {
  if (argv[0].find('/') == std::string::npos) argv[0] = InPath(argv[0]);
  if (argv[0].empty()) return false;
  absl::StatusOr<std::unique_ptr<Subprocess>> p = Subprocess::Start(std::move(argv));
  if (!p.ok()) return false;
  absl::StatusOr<int> status = (*p)->Wait(absl::Seconds(60));
  return ExitedCleanly(status);
}

// PerfSyscalls: counts the system calls of a process with perf's
// raw_syscalls:sys_enter tracepoint while it runs.
class PerfSyscalls {
 public:
  static std::unique_ptr<PerfSyscalls> Attach(pid_t pid, const std::string& out_path) {
    std::remove(out_path.c_str());
    const std::string perf_path = InPath("perf");
    if (perf_path.empty()) return nullptr;
    absl::StatusOr<std::unique_ptr<Subprocess>> perf =
        Subprocess::Start({perf_path, "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p",
                           std::to_string(pid), "-o", out_path});
    if (!perf.ok()) return nullptr;
    // perf prints nothing when it has attached; give it a moment, and check
    // that it did not fail at once (no perf, no tracepoint, no permission).
    absl::SleepFor(absl::Milliseconds(500));
    if (!(*perf)->Running()) return nullptr;
    auto p = std::unique_ptr<PerfSyscalls>(new PerfSyscalls());
    p->perf_ = *std::move(perf);
    p->out_path_ = out_path;
    return p;
  }
  // Stop: ends the count; the number of system calls, or nullopt.
  std::optional<int64_t> Stop() {
    perf_->Kill(SIGINT);
    if (!perf_->Wait(absl::Seconds(10)).ok()) return std::nullopt;
    std::ifstream in(out_path_);
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> fields = absl::StrSplit(line, ',');
      int64_t n = 0;
      if (fields.size() >= 3 && fields[2] == "raw_syscalls:sys_enter" &&
          absl::SimpleAtoi(fields[0], &n)) {
        return n;
      }
    }
    return std::nullopt;
  }

 private:
  PerfSyscalls() = default;
  std::unique_ptr<Subprocess> perf_;
  std::string out_path_;
};

// CallgrindTotal: the instruction count in a callgrind output file (its
// "totals:" line; "summary:" is the count at the last zeroing).
std::optional<int64_t> CallgrindTotal(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    int64_t n = 0;
    if (absl::ConsumePrefix(&rest, "totals:") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &n)) {
      return n;
    }
  }
  return std::nullopt;
}

// Instructions: runs the server under callgrind with instrumentation off,
// warms it, turns instrumentation on for the case alone, and divides the
// instructions by the messages sent.
std::optional<double> Instructions(std::vector<std::string> server_argv, const CostCase& c,
                                   bool sluice, const std::string& work_dir,
                                   const std::string& name) {
  const std::string out = absl::StrCat(work_dir, "/callgrind.", name, ".out");
  std::remove(out.c_str());
  std::vector<std::string> argv = {InPath("valgrind"), "--tool=callgrind", "--instr-atstart=no",
                                   "--callgrind-out-file=" + out};
  argv.insert(argv.end(), server_argv.begin(), server_argv.end());
  std::unique_ptr<ChildServer> server = ChildServer::Start(argv, work_dir, name);
  if (server == nullptr) return std::nullopt;
  Warm(server->target(), sluice);
  const std::string pid = std::to_string(server->pid());
  if (!RunQuietly({"callgrind_control", "--instr=on", pid})) return std::nullopt;
  std::optional<int64_t> messages = RunCase(server->target(), c, sluice, absl::Seconds(300));
  RunQuietly({"callgrind_control", "--instr=off", pid});
  server->Stop();  // callgrind writes its counts as the server exits
  std::optional<int64_t> total = CallgrindTotal(out);
  if (!messages.has_value() || !total.has_value()) return std::nullopt;
  return static_cast<double>(*total) / static_cast<double>(*messages);
}

// SyscallsAndSwitches: the same case against the server running natively.
void SyscallsAndSwitches(std::vector<std::string> server_argv, const CostCase& c, bool sluice,
                         const std::string& work_dir, const std::string& name, Counts& counts) {
  std::unique_ptr<ChildServer> server = ChildServer::Start(server_argv, work_dir, name);
  if (server == nullptr) return;
  Warm(server->target(), sluice);
  std::unique_ptr<PerfSyscalls> perf =
      PerfSyscalls::Attach(server->pid(), absl::StrCat(work_dir, "/perf.", name, ".txt"));
  const int64_t switches0 = ReadContextSwitches(server->pid());
  std::optional<int64_t> messages = RunCase(server->target(), c, sluice, absl::Seconds(60));
  const int64_t switches1 = ReadContextSwitches(server->pid());
  std::optional<int64_t> syscalls = perf != nullptr ? perf->Stop() : std::nullopt;
  server->Stop();
  if (!messages.has_value()) return;
  const double n = static_cast<double>(*messages);
  counts.switches = static_cast<double>(switches1 - switches0) / n;
  if (syscalls.has_value()) counts.syscalls = static_cast<double>(*syscalls) / n;
}

std::string Format(const std::optional<double>& v) { return v ? FormatNumber(*v) : "n/a"; }

std::string Ratio(const std::optional<double>& a, const std::optional<double>& b) {
  return a && b && *b > 0 ? FormatNumber(*a / *b) + "x" : "n/a";
}

}  // namespace

void RunCost(const BenchConfig& config, Report& report) {
  const std::string section = "Cost per message (counts)";
  const std::vector<CostCase> cases = {
      {"1 stream", 1, 1, config.cost_tokens_1},
      {"64 streams", 64, 8, config.cost_tokens_64},
  };
  const bool have_valgrind = RunQuietly({"valgrind", "--version"});
  report.Add(section, "setup",
             absl::StrFormat("zero-cost chunks (synthetic token_cost_us=0; raw_stream_server), a "
                             "fixed number of messages per case, the server's whole process; "
                             "instructions: callgrind over the case alone%s; syscalls: perf "
                             "raw_syscalls:sys_enter; context switches: /proc/<pid>/task/*/status",
                             have_valgrind ? "" : " (valgrind missing: not measured)"));
  const std::vector<std::string> sluice_argv = {config.sluice_server, "--metrics_port=-1"};
  const std::vector<std::string> raw_argv = {config.raw_server};
  int n = 0;
  for (const CostCase& c : cases) {
    Counts s, r;
    const std::string id = std::to_string(n++);
    if (have_valgrind) {
      s.instructions = Instructions(sluice_argv, c, true, config.work_dir, "cg-sluice" + id);
      r.instructions = Instructions(raw_argv, c, false, config.work_dir, "cg-raw" + id);
    }
    SyscallsAndSwitches(sluice_argv, c, true, config.work_dir, "sc-sluice" + id, s);
    SyscallsAndSwitches(raw_argv, c, false, config.work_dir, "sc-raw" + id, r);
    const std::string label = absl::StrCat(c.label, " (", c.streams * (c.tokens + 1), " messages)");
    report.Add(section, label + ": instructions per message, sluice / raw",
               absl::StrCat(Format(s.instructions), " / ", Format(r.instructions), " (",
                            Ratio(s.instructions, r.instructions), ")"),
               "<= raw",
               s.instructions && r.instructions ? Check(*s.instructions <= *r.instructions)
                                                : Verdict::kNone);
    report.Add(section, label + ": system calls per message, sluice / raw",
               absl::StrCat(Format(s.syscalls), " / ", Format(r.syscalls), " (",
                            Ratio(s.syscalls, r.syscalls), ")"));
    report.Add(section, label + ": context switches per message, sluice / raw",
               absl::StrCat(Format(s.switches), " / ", Format(r.switches), " (",
                            Ratio(s.switches, r.switches), ")"));
  }
}

}  // namespace sluice::bench
