#include "tools/proc_stats.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sluice {

std::string FormatMib(int64_t bytes) { return absl::StrFormat("%.1f MiB", bytes / 1048576.0); }

std::optional<ProcStats> ReadProcStats(pid_t pid) {
  ProcStats stats;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  if (!status) return std::nullopt;
  std::string line;
  while (std::getline(status, line)) {
    std::vector<absl::string_view> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (kv.size() != 2) continue;
    absl::string_view value = absl::StripAsciiWhitespace(kv[1]);
    absl::ConsumeSuffix(&value, " kB");
    int64_t n = 0;
    if (!absl::SimpleAtoi(value, &n)) continue;
    if (kv[0] == "VmRSS") stats.rss_bytes = n * 1024;
    if (kv[0] == "VmHWM") stats.peak_rss_bytes = n * 1024;
    if (kv[0] == "Threads") stats.threads = static_cast<int>(n);
  }
  // /proc/<pid>/stat: fields 14 and 15 (utime, stime) in clock ticks; the
  // command name (field 2) may contain spaces, so count from its closing ')'.
  std::ifstream stat_file(absl::StrCat("/proc/", pid, "/stat"));
  std::stringstream text;
  text << stat_file.rdbuf();
  const std::string stat = text.str();
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(close + 2), ' ', absl::SkipEmpty());
  int64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return std::nullopt;
  }
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  stats.cpu = absl::Seconds(static_cast<double>(utime + stime) / ticks);
  return stats;
}

std::optional<ThreadsRunTime> ReadThreadsRunTime(pid_t pid, absl::string_view name_prefix) {
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  DIR* dir = opendir(tasks.c_str());
  if (dir == nullptr) return std::nullopt;
  int64_t all_ns = 0, named_ns = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const std::string task = absl::StrCat(tasks, "/", entry->d_name);
    // schedstat: time on a CPU (ns), time waiting for one (ns), timeslices.
    std::ifstream schedstat(task + "/schedstat");
    int64_t on_cpu_ns = 0;
    if (!(schedstat >> on_cpu_ns)) continue;  // a thread that just exited
    all_ns += on_cpu_ns;
    std::ifstream comm(task + "/comm");
    std::string name;
    if (std::getline(comm, name) && absl::StartsWith(name, name_prefix)) named_ns += on_cpu_ns;
  }
  closedir(dir);
  return ThreadsRunTime{absl::Nanoseconds(all_ns), absl::Nanoseconds(named_ns)};
}

int64_t ReadContextSwitches(pid_t pid) {
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  DIR* dir = opendir(tasks.c_str());
  if (dir == nullptr) return 0;
  int64_t total = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream status(absl::StrCat(tasks, "/", entry->d_name, "/status"));
    std::string line;
    while (std::getline(status, line)) {
      absl::string_view rest = line;
      if (absl::ConsumePrefix(&rest, "voluntary_ctxt_switches:") ||
          absl::ConsumePrefix(&rest, "nonvoluntary_ctxt_switches:")) {
        int64_t n = 0;
        if (absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &n)) total += n;
      }
    }
  }
  closedir(dir);
  return total;
}

}  // namespace sluice
