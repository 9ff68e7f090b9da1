#ifndef SLUICE_TOOLS_LOAD_STALL_LOAD_H_
#define SLUICE_TOOLS_LOAD_STALL_LOAD_H_

// StallLoad opens many PredictStream calls that are never read, as a stuck
// or hostile client would: each connection keeps HTTP/2's flow-control
// windows small (no BDP probing, a 16 KiB lookahead), so the server's writes
// stay outstanding. Used by the stall test and the stall load tool.
//
// The server ends such a call on its own (as stalled) and resets it, but a
// gRPC client does not see the end of a call with unread messages until it
// reads them or gives up: these calls stay open on the client's side until
// CancelAll (or their deadline). What matters is the server's side.

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "models/sync.h"
#include "sluice/v1/inference.grpc.pb.h"

namespace sluice {

struct StallLoadOptions {
  std::string target;
  int streams = 2000;
  // Client connections the streams are spread over (each carries at most
  // the server's max_concurrent_streams).
  int channels = 20;
  v1::PredictRequest request;
  // The client's own deadline per call: far beyond the server's stall timeout.
  absl::Duration deadline = absl::Seconds(120);
};

class StallLoad {
 public:
  explicit StallLoad(StallLoadOptions options);
  // Cancels the calls still open and waits for them to end.
  ~StallLoad();
  StallLoad(const StallLoad&) = delete;
  StallLoad& operator=(const StallLoad&) = delete;

  // Start: opens every call (returns at once).
  void Start();
  // CancelAll: the client gives up on every call.
  void CancelAll();
  // WaitDone: until every call has ended on the client's side, or
  // `deadline`. Whether all did.
  bool WaitDone(absl::Time deadline);

  struct Result {
    int done = 0;
    int cancelled = 0;
    int other = 0;  // e.g. refused by the server (RESOURCE_EXHAUSTED)
    std::string first_other;
  };
  Result result() const;

 private:
  class Call;
  const StallLoadOptions options_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::Inference::Stub>> stubs_;
  std::vector<std::unique_ptr<Call>> calls_;
  mutable Mutex mu_;
  CondVar cv_;
  Result result_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_TOOLS_LOAD_STALL_LOAD_H_
