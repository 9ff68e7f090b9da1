#include "tools/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace sluice {
namespace {

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string RunfilePath(const std::string& workspace_relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return workspace_relative;
  return absl::StrCat(srcdir, "/", workspace != nullptr ? workspace : "sluice", "/",
                      workspace_relative);
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(std::vector<std::string> argv) {
  static std::atomic<int> counter{0};
  auto process = absl::WrapUnique(new Subprocess());
  const int n = counter++;
  process->stdout_path_ = absl::StrCat(TempDir(), "/subprocess_", getpid(), "_", n, ".out");
  process->stderr_path_ = absl::StrCat(TempDir(), "/subprocess_", getpid(), "_", n, ".err");

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, process->stdout_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, process->stderr_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  // The test process may block signals (e.g. a server's SIGTERM); the child
  // starts with none blocked.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  const int rc = posix_spawn(&process->pid_, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("cannot start ", argv[0], ": ", strerror(rc)));
  }
  return process;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void Subprocess::Kill(int signal) {
  if (!reaped_) kill(pid_, signal);
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  if (reaped_) return absl::FailedPreconditionError("already waited for");
  // A pidfd becomes readable when the child exits, so poll() waits for the
  // exit itself, with a timeout (waitpid has none).
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd < 0) return absl::InternalError(absl::StrCat("pidfd_open: ", strerror(errno)));
  pollfd fd{pidfd, POLLIN, 0};
  const int ready = poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  close(pidfd);
  if (ready == 0) {
    return absl::DeadlineExceededError(
        absl::StrCat("process ", pid_, " still running after ", absl::FormatDuration(timeout)));
  }
  int status = 0;
  if (waitpid(pid_, &status, 0) != pid_) return absl::InternalError("waitpid failed");
  reaped_ = true;
  return status;
}

bool Subprocess::Running() const {
  if (reaped_) return false;
  siginfo_t info{};
  // WNOWAIT: look without reaping, so Wait still gets the status.
  if (waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
  return info.si_pid == 0;
}

absl::StatusOr<std::string> WaitForFile(const std::string& path, Subprocess& process,
                                        absl::Duration timeout) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const int inotify = inotify_init1(IN_CLOEXEC);
  if (inotify < 0) return absl::InternalError("inotify_init1 failed");
  inotify_add_watch(inotify, dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE);
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, process.pid(), 0));
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status result = absl::DeadlineExceededError(absl::StrCat(path, " did not appear"));
  std::string content;
  while (true) {
    // Checked after the watch is in place, so a file created before it is seen too.
    if (access(path.c_str(), F_OK) == 0) {
      content = ReadFile(path);
      result = absl::OkStatus();
      break;
    }
    pollfd fds[2] = {{inotify, POLLIN, 0}, {pidfd, POLLIN, 0}};
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) break;
    if (poll(fds, pidfd >= 0 ? 2 : 1, static_cast<int>(left)) <= 0) break;
    if (fds[1].revents & POLLIN) {
      if (access(path.c_str(), F_OK) == 0) continue;
      result = absl::FailedPreconditionError("the process exited before creating " + path);
      break;
    }
    char events[4096];
    (void)!read(inotify, events, sizeof(events));  // drain; the loop re-checks the path
  }
  close(inotify);
  if (pidfd >= 0) close(pidfd);
  if (!result.ok()) return result;
  return content;
}

std::string Subprocess::Stdout() const { return ReadFile(stdout_path_); }
std::string Subprocess::Stderr() const { return ReadFile(stderr_path_); }

int64_t RaiseOpenFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
  }
  return static_cast<int64_t>(limit.rlim_cur);
}

bool ExitedCleanly(const absl::StatusOr<int>& wait_status) {
  return wait_status.ok() && WIFEXITED(*wait_status) && WEXITSTATUS(*wait_status) == 0;
}

std::string DescribeExit(const absl::StatusOr<int>& wait_status) {
  if (!wait_status.ok()) return wait_status.status().ToString();
  if (WIFSIGNALED(*wait_status)) return absl::StrCat("signal ", WTERMSIG(*wait_status));
  return absl::StrCat("exit ", WEXITSTATUS(*wait_status));
}

}  // namespace sluice
