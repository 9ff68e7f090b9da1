#ifndef SLUICE_TOOLS_BENCHMARK_SECTIONS_H_
#define SLUICE_TOOLS_BENCHMARK_SECTIONS_H_

// The benchmark's sections. Each runs its own servers, bounded in count and
// time, and adds its figures to the report. Sections that need exact times
// or the model's own counters run a sluice server in this process (one clock
// for client and server); the rest run the stock binaries as child processes
// and read their CPU and memory from /proc.

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tools/benchmark/report.h"

namespace sluice::bench {

// BenchConfig: sizes of every section; Full() and Quick() are the two modes.
struct BenchConfig {
  bool quick = false;
  uint64_t seed = 1;
  std::string sluice_server;  // path to //service:sluice_server
  std::string raw_server;     // path to //tools/benchmark:raw_stream_server
  std::string tinylm;         // models/tinylm/tinylm.pt (the torch section)
  std::string torch_peer;     // tools/benchmark/torch_peer.py (the torch section's peer)
  std::string work_dir;       // port files
  // Extra flags for the sluice server of the throughput and first-chunk
  // sections (the defaults are measured when empty).
  std::vector<std::string> throughput_server_args;
  // Flags for a second sluice server measured alongside the default one
  // (echo only, for information: not judged against the target).
  std::vector<std::string> throughput_tuned_args = {"--stream_buffer_chunks=8"};
  // Only the throughput cases whose label contains this (all when empty).
  std::string throughput_only;

  // Waste after cancel and stop latency.
  int waste_streams = 200;      // cancelled one at a time
  int concurrent_streams = 64;  // cancelled while all run
  int concurrent_rounds = 3;
  int64_t waste_tokens = 3000;         // the LitServe comparison's request size
  int64_t waste_token_cost_us = 1000;  // CPU per chunk
  int64_t cancel_at_max = 100;         // cancel at a chunk drawn from [1, this]
  int isolated_cancels = 10;           // with the whole process's CPU for 400 ms after
  int server_process_cancels = 20;     // the same against the stock server as a process

  // Throughput: sluice against raw gRPC, interleaved repetitions.
  int throughput_reps = 5;
  absl::Duration throughput_warmup = absl::Milliseconds(300);
  absl::Duration throughput_window = absl::Seconds(2);

  // Cost per message in counts (instructions, syscalls, context switches):
  // messages per stream at 1 stream and at 64 streams.
  int64_t cost_tokens_1 = 20000;
  int64_t cost_tokens_64 = 400;

  // Time to first chunk at 1, 100 and 1000 concurrent streams.
  int ttfc_serial_calls = 300;  // at 1: calls one after another, per server
  int ttfc_rounds_100 = 10;     // bursts of 100, per server
  int ttfc_rounds_1000 = 5;     // bursts of 1000, per server

  // Paced streams and scale: streams of a chunk a second over
  // scale_channels connections; what each costs at paced_streams, whether
  // all are served at scale_streams.
  int paced_streams = 10000;
  int scale_streams = 50000;
  int scale_channels = 100;
  absl::Duration scale_hold = absl::Seconds(3);        // paced_streams
  absl::Duration scale_hold_large = absl::Seconds(5);  // scale_streams
  absl::Duration scale_open_timeout = absl::Seconds(120);
  // Half of the 80 us per chunk measured before issue 10.
  double paced_cpu_per_chunk_target_us = 40;

  // Abandonment tax.
  int abandon_reps = 3;
  int abandon_stayers = 32;  // and as many who leave
  int64_t abandon_tokens = 200;
  int64_t abandon_token_cost_us = 500;
  int64_t abandon_leave_at_max = 8;  // leavers leave after a chunk drawn from [1, this]
  // Clients arrive one after another this far apart, over a span shorter
  // than the work, so that later arrivals find the workers busy with what
  // the earlier ones (still) want.
  absl::Duration abandon_arrival_spacing = absl::Milliseconds(10);
  bool abandon_reference = true;  // also run "the leavers' work goes on"

  // Batching (batched_synthetic): what sharing steps buys, and what a
  // caller leaving a batch costs the others.
  int64_t batch_step_cost_us = 2000;    // once per step
  int64_t batch_sequence_cost_us = 50;  // per sequence in the step
  std::vector<int> batch_streams = {1, 8, 32, 64};
  int batch_reps = 3;
  absl::Duration batch_warmup = absl::Milliseconds(300);
  absl::Duration batch_window = absl::Seconds(2);
  int batch_abandon_rounds = 3;
  int64_t batch_leave_after_min = 50;  // leavers cancel after a chunk drawn from [min, max]
  int64_t batch_leave_after_max = 150;

  // Queue under overload.
  int queue_capacity = 64;
  int queue_rejected_calls = 200;

  static BenchConfig Full();
  static BenchConfig Quick();
};

// PlotData: what the PNG plot shows; written as gnuplot data files.
struct PlotData {
  std::vector<double> stop_latency_serial_ms;
  std::vector<double> stop_latency_concurrent_ms;
  std::string concurrent_title;  // how the concurrent cancels were made
  double stop_target_ms = 2;     // 1 ms plus the chunk in flight
  struct Ratio {
    std::string label;
    std::vector<double> throughput;  // sluice msgs/s over raw msgs/s, per repetition
    std::vector<double> cpu;         // raw CPU per message over sluice's, per repetition
  };
  std::vector<Ratio> throughput_ratios;
};

// In-process sections (sections_inprocess.cc).
void RunWasteAndStopLatency(const BenchConfig& config, Report& report, PlotData& plot);
void RunQueue(const BenchConfig& config, Report& report);

// Child-process sections (sections_load.cc).
void RunThroughputAndFirstChunk(const BenchConfig& config, bool throughput, bool first_chunk,
                                Report& report, PlotData& plot);
void RunScale(const BenchConfig& config, Report& report);
// RunServerProcessWaste: the CPU a stock server process (its own accounting)
// spends after a client's cancel, against a stream that ends normally.
void RunServerProcessWaste(const BenchConfig& config, Report& report);
void RunAbandonment(const BenchConfig& config, Report& report);

// Instructions, syscalls and context switches per message (sections_cost.cc).
void RunCost(const BenchConfig& config, Report& report);

// Continuous batching (sections_batch.cc).
void RunBatching(const BenchConfig& config, Report& report);

// A TorchScript language model, tinylm (sections_torch.cc).
void RunTorch(const BenchConfig& config, Report& report);

}  // namespace sluice::bench

#endif  // SLUICE_TOOLS_BENCHMARK_SECTIONS_H_
