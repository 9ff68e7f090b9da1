#ifndef SLUICE_TOOLS_BENCHMARK_STREAM_PROBE_H_
#define SLUICE_TOOLS_BENCHMARK_STREAM_PROBE_H_

// StreamSet: a batch of PredictStream calls, each with its own request and
// its own plan (read to the end, or cancel on receiving its k-th chunk), made
// with gRPC's callback API from one process, and a record of what happened to
// each: when it started, got its first chunk, was cancelled, ended, and how.
// The benchmark's client for every section that needs per-stream times;
// tools/load's StreamLoad serves the uniform many-streams case.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/status.h"
#include "models/sync.h"
#include "sluice/v1/inference.grpc.pb.h"

namespace sluice::bench {

// Synthetic: a request for the synthetic model with these int64 parameters.
v1::PredictRequest Synthetic(std::vector<std::pair<std::string, int64_t>> params,
                             std::string request_id = "");

// MakeChannels: `n` channels to `target`, each its own HTTP/2 connection,
// connected (or not, if `deadline` passes first: then an empty vector).
std::vector<std::shared_ptr<grpc::Channel>> MakeChannels(const std::string& target, int n,
                                                         absl::Time deadline);

// StreamPlan: one stream of a StreamSet.
struct StreamPlan {
  v1::PredictRequest request;
  // Cancel the call (TryCancel) on receiving this many output chunks; -1 never.
  int64_t cancel_after_chunks = -1;
  // With cancel_after_chunks: only call the set's BeforeCancel hook at that
  // chunk and read on (a control that marks the same moment of a stream
  // without cancelling it).
  bool mark_only = false;
  // The call's deadline, from its start; infinite for none.
  absl::Duration deadline = absl::InfiniteDuration();
};

// StreamRecord: what happened to one stream. Times are absl::Now() readings
// on the thread that saw the event; InfinitePast if it did not happen.
struct StreamRecord {
  absl::Time started = absl::InfinitePast();      // just before StartCall
  absl::Time first_chunk = absl::InfinitePast();  // first output chunk received
  absl::Time cancelled = absl::InfinitePast();    // just before TryCancel
  absl::Time ended = absl::InfinitePast();        // OnDone
  int64_t chunks = 0;  // output chunks received before the cancel (or in all)
  bool done = false;
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
};

class StreamSet {
 public:
  // BeforeCancel: called with a stream's index on the gRPC thread that is
  // about to cancel it (cancel_after_chunks), right before its cancel time is
  // read and TryCancel is called. Must be quick and thread-safe.
  using BeforeCancel = std::function<void(int index)>;

  // The streams are spread round-robin over `channels`.
  explicit StreamSet(std::vector<std::shared_ptr<grpc::Channel>> channels,
                     BeforeCancel before_cancel = {});
  // Cancels the streams still open and waits (up to 30 s) for them to end.
  ~StreamSet();

  StreamSet(const StreamSet&) = delete;
  StreamSet& operator=(const StreamSet&) = delete;

  // Start: starts one stream per plan, in order, `spacing` apart (this
  // thread sleeps in between). Call once.
  void Start(std::vector<StreamPlan> plans, absl::Duration spacing = absl::ZeroDuration());

  // WaitDone: until every stream has ended, or `deadline`. True if all ended.
  bool WaitDone(absl::Time deadline);
  // WaitFirstChunks: until `n` streams have received a chunk, or `deadline`.
  bool WaitFirstChunks(int n, absl::Time deadline);
  // CancelAll: cancels every stream from the client side.
  void CancelAll();

  // chunks: output chunks received so far over all streams (cheap; for
  // throughput windows).
  int64_t chunks() const { return chunks_.load(std::memory_order_relaxed); }
  // records: a copy of every stream's record, in plan order.
  std::vector<StreamRecord> records() const;

 private:
  class Reader;

  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::Inference::Stub>> stubs_;
  const BeforeCancel before_cancel_;
  std::vector<std::unique_ptr<Reader>> readers_;
  std::atomic<int64_t> chunks_{0};

  mutable Mutex mu_;
  CondVar cv_;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  int with_chunks_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sluice::bench

#endif  // SLUICE_TOOLS_BENCHMARK_STREAM_PROBE_H_
