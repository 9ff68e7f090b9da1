#ifndef SLUICE_TOOLS_PROC_STATS_H_
#define SLUICE_TOOLS_PROC_STATS_H_

// What the kernel says about a process: memory and CPU time (Linux /proc).

#include <sys/types.h>

#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sluice {

struct ProcStats {
  int64_t rss_bytes = 0;       // VmRSS
  int64_t peak_rss_bytes = 0;  // VmHWM
  int threads = 0;
  absl::Duration cpu;  // user + system time, all threads
};

// ReadProcStats: `pid`'s stats, or nullopt if it cannot be read.
std::optional<ProcStats> ReadProcStats(pid_t pid);

// ReadThreadsRunTime: the time `pid`'s live threads have spent on a CPU, to
// the nanosecond (the sum of /proc/<pid>/task/*/schedstat), for windows too
// short for ProcStats::cpu's 10 ms ticks. A thread that exits leaves the sum,
// so compare two readings only across a window in which none does (the
// sluice server's threads live as long as it does). nullopt if unreadable.
// `name_prefix`, if not empty, counts only the threads whose name (comm)
// starts with it, e.g. "sluice:" for the sluice server's model workers.
std::optional<absl::Duration> ReadThreadsRunTime(pid_t pid, absl::string_view name_prefix = "");

}  // namespace sluice

#endif  // SLUICE_TOOLS_PROC_STATS_H_
