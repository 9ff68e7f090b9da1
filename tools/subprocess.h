#ifndef SLUICE_TOOLS_SUBPROCESS_H_
#define SLUICE_TOOLS_SUBPROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sluice {

// Subprocess: a child process a test or tool starts, waits for or kills. The
// child's stdout and stderr go to files under $TEST_TMPDIR (or /tmp). The destructor kills a
// child that is still running (SIGKILL) and reaps it.
class Subprocess {
 public:
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(std::vector<std::string> argv);
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // Running: false once the child has exited (without reaping it).
  bool Running() const;
  // Kill: sends `signal` to the child.
  void Kill(int signal);
  // Wait: waits up to `timeout` for the child to exit; its wait status, or
  // DEADLINE_EXCEEDED.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  std::string Stdout() const;
  std::string Stderr() const;
  // stderr_path: the file the child's stderr goes to.
  const std::string& stderr_path() const { return stderr_path_; }

 private:
  Subprocess() = default;
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string stdout_path_, stderr_path_;
};

// ExitedCleanly: `wait_status` (from Subprocess::Wait) is an exit with 0.
bool ExitedCleanly(const absl::StatusOr<int>& wait_status);
// DescribeExit: how a process ended, from its `wait_status`: "exit N",
// "signal N", or why there is no status (e.g. it did not exit in time).
std::string DescribeExit(const absl::StatusOr<int>& wait_status);

// WaitForFile: waits until `path` is created (complete: written elsewhere and
// renamed into place, or closed after writing) and returns its content.
// Fails early if `process` exits first, or after `timeout`. Event-driven
// (inotify and a pidfd), no polling.
absl::StatusOr<std::string> WaitForFile(const std::string& path, Subprocess& process,
                                        absl::Duration timeout);

// RaiseOpenFileLimit: raises this process's soft limit on open files to its
// hard limit (children started afterwards inherit it), for tools that open
// many connections. Returns the limit now in force.
int64_t RaiseOpenFileLimit();

// RunfilePath: the path of a data dependency, e.g. "client/sluice_cli".
std::string RunfilePath(const std::string& workspace_relative);

}  // namespace sluice

#endif  // SLUICE_TOOLS_SUBPROCESS_H_
