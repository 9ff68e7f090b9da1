#ifndef SLUICE_TOOLS_LOAD_LOAD_PROCESSES_H_
#define SLUICE_TOOLS_LOAD_LOAD_PROCESSES_H_

// LoadProcesses spreads a StreamLoad's streams over several child processes,
// each a StreamLoad of its own share of the streams and connections. One
// process is not enough for tens of thousands of streams on this kind of
// machine: Debian's gRPC is built with its debug checks, and every
// completion scans all the tags outstanding on its completion queue (two per
// open client stream), so a client's cost per chunk grows with the streams
// it holds. Split over ten processes, each scan is a tenth as long.
//
// The children are this same binary (/proc/self/exe), started with
// --load_child_dir: its main() must call RunLoadChildIfAsked first. The
// parent and a child talk through files in the child's directory (the spec
// it runs, and a file per phase it completes, written whole and renamed
// into place) and two signals (SIGUSR1: mark the chunks and check every
// stream is served again; SIGUSR2: cancel every stream). A child whose
// parent does not move it on gives up by itself after the spec's time
// limit: it cancels its streams and exits.

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/load/stream_load.h"
#include "tools/proc_stats.h"
#include "tools/subprocess.h"

namespace sluice {

// ProcessesFor: how many client processes `streams` streams are spread
// over by default: one per 5,000.
int ProcessesFor(int streams);

// TransportQuotaFor: the --transport_memory_bytes a server needs to hold
// `streams` open streams. gRPC charges each call's own state (its arena,
// about 15 KB) to the transport quota, whose default (512 MiB) holds about
// 35,000 streams; beyond it gRPC stalls its connections' reads until memory
// frees. 20 KiB a stream, and never less than the default.
int64_t TransportQuotaFor(int streams);

class LoadProcesses {
 public:
  // Start: starts `processes` children in `work_dir` (created if needed),
  // the streams and connections of `options` split evenly among them (no
  // more children than streams or connections: each has connections of its
  // own); each child gives up after `give_up_after`. Returns at once; the
  // children open their streams by themselves.
  static absl::StatusOr<std::unique_ptr<LoadProcesses>> Start(const LoadOptions& options,
                                                              int processes,
                                                              const std::string& work_dir,
                                                              absl::Duration give_up_after);
  // Kills (SIGKILL) the children still running.
  ~LoadProcesses();

  // WaitForFirstChunks: until every child has had a first chunk on each of
  // its streams (or gave up waiting), or `deadline`. True if every stream got
  // one.
  bool WaitForFirstChunks(absl::Time deadline);
  // with_chunks / FirstChunkLatencies: what WaitForFirstChunks saw.
  int with_chunks() const { return with_chunks_; }
  std::vector<absl::Duration> FirstChunkLatencies() const { return latencies_; }

  // MarkChunks: each child notes its streams' chunk counts; it then waits
  // (up to `hold`) until every stream has received another.
  void MarkChunks(absl::Duration hold);
  // WaitForChunksSinceMark: until every child has reported, or `deadline`;
  // the number of streams served again.
  int WaitForChunksSinceMark(absl::Time deadline);

  // CancelAll: every child cancels its streams.
  void CancelAll();
  // WaitDone: until every child has reported its streams ended, or
  // `deadline`. True if all did.
  bool WaitDone(absl::Time deadline);
  // After WaitDone: streams that ended CANCELLED, and the chunks received
  // between MarkChunks and CancelAll.
  int cancelled() const { return cancelled_; }
  int64_t chunks_since_mark() const { return chunks_since_mark_; }
  // Streams that ended with a status other than OK, CANCELLED or
  // DEADLINE_EXCEEDED, and the first such status.
  int other_errors() const { return other_errors_; }
  const std::string& first_error() const { return first_error_; }

  // processes: how many children were started.
  int processes() const { return static_cast<int>(children_.size()); }
  // stats: the children's memory and CPU time, summed.
  ProcStats stats() const;

 private:
  LoadProcesses() = default;

  struct Child {
    std::string dir;
    std::unique_ptr<Subprocess> process;
  };
  // Signal: sends `signal` to every child still running.
  void Signal(int signal);
  // Collect: waits for each child's `phase` file, up to `deadline`; their
  // contents (empty for a child that did not write it).
  std::vector<std::string> Collect(const std::string& phase, absl::Time deadline);

  std::vector<Child> children_;
  int streams_ = 0;  // over all children
  int with_chunks_ = 0;
  std::vector<absl::Duration> latencies_;
  int cancelled_ = 0;
  int64_t chunks_since_mark_ = 0;
  int other_errors_ = 0;
  std::string first_error_;
};

// RunLoadChildIfAsked: if argv asks for a LoadProcesses child
// (--load_child_dir=DIR), runs it and returns its exit code; otherwise
// nullopt. Call it first thing in main(), before gRPC starts any thread.
std::optional<int> RunLoadChildIfAsked(int argc, char** argv);

}  // namespace sluice

#endif  // SLUICE_TOOLS_LOAD_LOAD_PROCESSES_H_
