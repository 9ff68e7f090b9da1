#include "tests/server_process.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace sluice::testing {
namespace {

constexpr absl::Duration kWait = absl::Seconds(30);

}  // namespace

ServerProcess::ServerProcess(const std::string& binary, std::vector<std::string> flags) {
  static int counter = 0;
  dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/server_", counter++);
  mkdir(dir_.c_str(), 0755);
  std::vector<std::string> argv = {RunfilePath(binary), "--port=0", "--metrics_port=-1",
                                   "--port_file=" + dir_ + "/port",
                                   "--metrics_port_file=" + dir_ + "/metrics_port"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  absl::StatusOr<std::unique_ptr<Subprocess>> process = Subprocess::Start(argv);
  EXPECT_TRUE(process.ok()) << process.status();
  if (process.ok()) process_ = *std::move(process);
}

bool ServerProcess::WaitReady() {
  absl::StatusOr<std::string> text = WaitForFile(dir_ + "/port", *process_, kWait);
  int port;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &port)) return false;
  // Written before the port file, so already there.
  absl::StatusOr<std::string> metrics = WaitForFile(dir_ + "/metrics_port", *process_, kWait);
  if (!metrics.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*metrics), &metrics_port_)) {
    return false;
  }
  target_ = absl::StrCat("127.0.0.1:", port);
  client_ = SluiceClient::Connect(target_);
  return true;
}

std::vector<std::string> ServerProcess::StopAndLog() {
  process_->Kill(SIGTERM);
  absl::StatusOr<int> status = process_->Wait(kWait);
  EXPECT_TRUE(ExitedCleanly(status)) << DescribeExit(status) << "\n" << process_->Stderr();
  return absl::StrSplit(process_->Stderr(), '\n', absl::SkipEmpty());
}

CliRun RunCli(const std::string& target, std::vector<std::string> args) {
  std::vector<std::string> argv = {RunfilePath("client/sluice_cli"), "--target=" + target};
  argv.insert(argv.end(), args.begin(), args.end());
  CliRun run;
  absl::StatusOr<std::unique_ptr<Subprocess>> cli = Subprocess::Start(argv);
  if (!cli.ok()) return run;
  absl::StatusOr<int> status = (*cli)->Wait(kWait);
  if (status.ok() && WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
  run.out = (*cli)->Stdout();
  run.err = (*cli)->Stderr();
  return run;
}

}  // namespace sluice::testing
