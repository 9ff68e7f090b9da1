#ifndef SLUICE_TOOLS_PROC_STATS_H_
#define SLUICE_TOOLS_PROC_STATS_H_

// What the kernel says about a process: memory and CPU time (Linux /proc).

#include <sys/types.h>

#include <optional>

#include "absl/time/time.h"

namespace sluice {

struct ProcStats {
  int64_t rss_bytes = 0;       // VmRSS
  int64_t peak_rss_bytes = 0;  // VmHWM
  int threads = 0;
  absl::Duration cpu;          // user + system time, all threads
};

// ReadProcStats: `pid`'s stats, or nullopt if it cannot be read.
std::optional<ProcStats> ReadProcStats(pid_t pid);

}  // namespace sluice

#endif  // SLUICE_TOOLS_PROC_STATS_H_
