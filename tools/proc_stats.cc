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
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sluice {

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

std::optional<absl::Duration> ReadThreadsRunTime(pid_t pid, absl::string_view name_prefix) {
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  DIR* dir = opendir(tasks.c_str());
  if (dir == nullptr) return std::nullopt;
  int64_t total_ns = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    if (!name_prefix.empty()) {
      std::ifstream comm(absl::StrCat(tasks, "/", entry->d_name, "/comm"));
      std::string name;
      if (!std::getline(comm, name) || !absl::StartsWith(name, name_prefix)) continue;
    }
    // schedstat: time on a CPU (ns), time waiting for one (ns), timeslices.
    std::ifstream schedstat(absl::StrCat(tasks, "/", entry->d_name, "/schedstat"));
    int64_t on_cpu_ns = 0;
    if (schedstat >> on_cpu_ns) total_ns += on_cpu_ns;  // a thread that just exited: skip
  }
  closedir(dir);
  return absl::Nanoseconds(total_ns);
}

}  // namespace sluice
