#ifndef SLUICE_TOOLS_LOAD_STREAM_LOAD_H_
#define SLUICE_TOOLS_LOAD_STREAM_LOAD_H_

// StreamLoad opens many concurrent PredictStream calls from one process with
// gRPC's callback API (no thread per stream), spread over several channels,
// and keeps count of what each received. Used by the scale test and by the
// load and benchmark tools.

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "models/sync.h"
#include "sluice/v1/inference.grpc.pb.h"

namespace sluice {

struct LoadOptions {
  // Server address, host:port.
  std::string target;
  // Concurrent streams to open.
  int streams = 100;
  // Channels (each its own HTTP/2 connection) the streams are spread over.
  int channels = 10;
  // The request every stream sends; request_id gets the stream's number appended.
  v1::PredictRequest request;
  // Per-stream deadline; infinite for none.
  absl::Duration deadline = absl::InfiniteDuration();
};

class StreamLoad {
 public:
  explicit StreamLoad(LoadOptions options);
  // Cancels the streams still open and waits for them to end.
  ~StreamLoad();

  StreamLoad(const StreamLoad&) = delete;
  StreamLoad& operator=(const StreamLoad&) = delete;

  // Start: opens every stream. Returns at once; the calls proceed on gRPC's threads.
  void Start();

  // WaitForFirstChunks: until `n` streams have received a chunk, or `deadline`.
  bool WaitForFirstChunks(int n, absl::Time deadline);
  // WaitForChunksSince: until every open stream has received at least one
  // chunk after `mark` (see MarkChunks), or `deadline`. Returns how many had.
  int WaitForChunksSinceMark(absl::Time deadline);
  // MarkChunks: remembers each stream's chunk count, for WaitForChunksSinceMark.
  void MarkChunks();

  // CancelAll: cancels every stream from the client side.
  void CancelAll();
  // CancelFirst: cancels streams [0, n).
  void CancelFirst(int n);
  // WaitDone: until `n` streams have ended (all if n < 0), or `deadline`.
  bool WaitDone(int n, absl::Time deadline);

  struct Counts {
    int started = 0;
    int with_chunks = 0;  // received at least one output chunk
    int done = 0;
    int ok = 0;
    int cancelled = 0;
    int deadline_exceeded = 0;
    int other_errors = 0;
    int64_t chunks = 0;
    std::string first_error;
  };
  Counts counts() const;

  // FirstChunkLatencies: start of each stream to its first chunk, for the
  // streams that got one.
  std::vector<absl::Duration> FirstChunkLatencies() const;

 private:
  class Reader;
  friend class Reader;

  const LoadOptions options_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::Inference::Stub>> stubs_;
  std::vector<std::unique_ptr<Reader>> readers_;

  mutable Mutex mu_;
  CondVar cv_;
  Counts counts_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> marked_ ABSL_GUARDED_BY(mu_);
  // Streams with a chunk since the last MarkChunks.
  int progressed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sluice

#endif  // SLUICE_TOOLS_LOAD_STREAM_LOAD_H_
