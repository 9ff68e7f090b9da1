#ifndef SLUICE_TOOLS_BENCHMARK_CHILD_SERVER_H_
#define SLUICE_TOOLS_BENCHMARK_CHILD_SERVER_H_

// ChildServer: a server the benchmark runs as a child process, started on a
// free loopback port; its CPU and memory come from its own kernel accounting.

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tools/proc_stats.h"
#include "tools/subprocess.h"

namespace sluice::bench {

class ChildServer {
 public:
  // Start: runs `argv` plus --port=0 and --port_file, and waits until it
  // listens; nullptr (and a message) if it does not. With `serve_metrics`,
  // it also serves /metrics on a port of its own choosing (metrics_port).
  static std::unique_ptr<ChildServer> Start(std::vector<std::string> argv,
                                            const std::string& work_dir, const std::string& name,
                                            bool serve_metrics = false) {
    static int counter = 0;
    const std::string port_file =
        absl::StrCat(work_dir, "/", name, ".", getpid(), ".", counter++, ".port");
    const std::string metrics_port_file = port_file + ".metrics";
    std::remove(port_file.c_str());
    std::remove(metrics_port_file.c_str());
    argv.push_back("--port=0");
    argv.push_back("--port_file=" + port_file);
    if (serve_metrics) {
      argv.push_back("--metrics_port=0");
      argv.push_back("--metrics_port_file=" + metrics_port_file);
    }
    absl::StatusOr<std::unique_ptr<Subprocess>> process = Subprocess::Start(argv);
    if (!process.ok()) {
      std::fprintf(stderr, "cannot start %s: %s\n", argv[0].c_str(),
                   process.status().ToString().c_str());
      return nullptr;
    }
    absl::StatusOr<std::string> port = WaitForFile(port_file, **process, absl::Seconds(60));
    std::remove(port_file.c_str());
    if (!port.ok()) {
      std::fprintf(stderr, "%s did not start: %s\n%s\n", argv[0].c_str(),
                   port.status().ToString().c_str(), (*process)->Stderr().c_str());
      return nullptr;
    }
    auto child = std::unique_ptr<ChildServer>(new ChildServer());
    if (serve_metrics) {
      // Written before the port file, so already there.
      absl::StatusOr<std::string> metrics =
          WaitForFile(metrics_port_file, **process, absl::Seconds(1));
      std::remove(metrics_port_file.c_str());
      if (!metrics.ok() ||
          !absl::SimpleAtoi(absl::StripAsciiWhitespace(*metrics), &child->metrics_port_)) {
        std::fprintf(stderr, "%s wrote no metrics port: %s\n", argv[0].c_str(),
                     metrics.status().ToString().c_str());
        (*process)->Kill(SIGKILL);
        return nullptr;
      }
    }
    child->process_ = *std::move(process);
    child->target_ = absl::StrCat("127.0.0.1:", absl::StripAsciiWhitespace(*port));
    return child;
  }

  // Stop: SIGTERM, then waits; true if it exited 0 (otherwise it says how it
  // ended, and where its stderr is).
  bool Stop() {
    process_->Kill(SIGTERM);
    absl::StatusOr<int> status = process_->Wait(absl::Seconds(30));
    const bool clean = ExitedCleanly(status);
    if (!clean) {
      std::fprintf(stderr, "server %d did not exit cleanly (%s); its stderr: %s\n", pid(),
                   DescribeExit(status).c_str(), process_->stderr_path().c_str());
    }
    return clean;
  }

  const std::string& target() const { return target_; }
  // metrics_port: where it serves /metrics (Start's `serve_metrics`), else -1.
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return process_->pid(); }
  std::optional<ProcStats> stats() const { return ReadProcStats(pid()); }
  // cpu: the child's user + system CPU time so far (10 ms ticks).
  absl::Duration cpu() const {
    std::optional<ProcStats> s = stats();
    return s ? s->cpu : absl::ZeroDuration();
  }

 private:
  ChildServer() = default;
  std::unique_ptr<Subprocess> process_;
  std::string target_;
  int metrics_port_ = -1;
};

}  // namespace sluice::bench

#endif  // SLUICE_TOOLS_BENCHMARK_CHILD_SERVER_H_
