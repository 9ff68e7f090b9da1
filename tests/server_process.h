#ifndef SLUICE_TESTS_SERVER_PROCESS_H_
#define SLUICE_TESTS_SERVER_PROCESS_H_

// A server binary run as a process, the way a user runs it.

#include <memory>
#include <string>
#include <vector>

#include "client/sluice_client.h"
#include "tools/subprocess.h"

namespace sluice::testing {

// ServerProcess: a server binary (a runfiles path, e.g.
// "service/sluice_server") started with --port=0, its port read from the
// --port_file it writes once it listens. No metrics unless `flags` ask (the
// default port would collide between tests running at once).
class ServerProcess {
 public:
  ServerProcess(const std::string& binary, std::vector<std::string> flags);

  // WaitReady: true once the server listens (its port file appeared); false
  // if it exited first or did not get there in time.
  bool WaitReady();

  const std::string& target() const { return target_; }
  SluiceClient& client() { return *client_; }
  Subprocess& process() { return *process_; }
  // MetricsPort: the server's metrics port (with --metrics_port=0, the one
  // it picked; -1 if it serves none), from its --metrics_port_file. Known
  // once WaitReady returned true.
  int MetricsPort() const { return metrics_port_; }

  // StopAndLog: stops the server with SIGTERM, expects it to exit 0, and
  // returns everything it logged, one entry per line.
  std::vector<std::string> StopAndLog();

 private:
  std::string dir_;
  int metrics_port_ = -1;
  std::string target_;
  std::unique_ptr<Subprocess> process_;
  std::unique_ptr<SluiceClient> client_;
};

// CliRun: how a run of sluice_cli ended: its exit code (-1 if it did not
// exit), stdout and stderr.
struct CliRun {
  int exit_code = -1;
  std::string out, err;
};

// RunCli: runs sluice_cli (a data dependency: //client:sluice_cli) against
// `target` with `args`, and waits for it to exit.
CliRun RunCli(const std::string& target, std::vector<std::string> args);

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_SERVER_PROCESS_H_
