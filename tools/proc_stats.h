#ifndef SLUICE_TOOLS_PROC_STATS_H_
#define SLUICE_TOOLS_PROC_STATS_H_

// What the kernel says about a process: memory and CPU time (Linux /proc).

#include <sys/types.h>

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sluice {

struct ProcStats {
  int64_t rss_bytes = 0;       // VmRSS
  int64_t peak_rss_bytes = 0;  // VmHWM
  int threads = 0;
  absl::Duration cpu;  // user + system time, all threads
};

// FormatMib: `bytes` as "12.3 MiB".
std::string FormatMib(int64_t bytes);

// ReadProcStats: `pid`'s stats, or nullopt if it cannot be read.
std::optional<ProcStats> ReadProcStats(pid_t pid);

// ThreadsRunTime: the time a process's live threads have spent on a CPU, to
// the nanosecond (the sum of /proc/<pid>/task/*/schedstat), for windows too
// short for ProcStats::cpu's 10 ms ticks: all of them, and those whose name
// (comm) starts with a given prefix.
struct ThreadsRunTime {
  absl::Duration all;
  absl::Duration named;
};

// ReadThreadsRunTime: `pid`'s ThreadsRunTime, `named` counting the threads
// whose name starts with `name_prefix` (e.g. "sluice:" for the sluice
// server's model workers), in one walk of its threads. A thread that exits
// leaves the sums, so compare two readings only across a window in which
// none does (the sluice server's threads live as long as it does). nullopt
// if unreadable.
std::optional<ThreadsRunTime> ReadThreadsRunTime(pid_t pid, absl::string_view name_prefix);

// ReadContextSwitches: the voluntary and involuntary context switches of
// every live thread of `pid` so far (the same caveat about exiting threads
// as above); 0 if unreadable.
int64_t ReadContextSwitches(pid_t pid);

}  // namespace sluice

#endif  // SLUICE_TOOLS_PROC_STATS_H_
