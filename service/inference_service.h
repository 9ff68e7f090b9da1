#ifndef SLUICE_SERVICE_INFERENCE_SERVICE_H_
#define SLUICE_SERVICE_INFERENCE_SERVICE_H_

#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "handlers/call.h"
#include "handlers/executor.h"
#include "handlers/stats.h"
#include "handlers/timer_queue.h"
#include "models/model.h"
#include "models/sync.h"
#include "service/auth.h"
#include "service/peer_probe.h"
#include "service/served_model.h"
#include "sluice/v1/inference.grpc.pb.h"

namespace sluice {

// CallLimits: per-call settings that apply to every model.
struct CallLimits {
  size_t stream_buffer_chunks = 64;
  size_t stream_buffer_bytes = 1 << 20;
  absl::Duration write_stall_timeout = absl::Seconds(10);
  size_t max_unary_output_bytes = 4 << 20;
  OutputBudget* output_budget = nullptr;  // server-wide; nullptr: none
  // The bytes of requests in flight (which gRPC holds until each call is
  // done) may add up to this; beyond it, RESOURCE_EXHAUSTED. 0: no bound.
  uint64_t max_request_memory_bytes = 0;
};

// InferenceService implements sluice.v1.Inference with gRPC's callback API:
// a reactor per call, no thread held while a model computes. Reactors only
// sequence the RPC; handlers/ decides what the model does.
class InferenceService final : public v1::Inference::CallbackService {
 public:
  // `models`, `timers`, `unknown_model_stats`, `probe` and `auth` outlive
  // the service. The set of models is fixed before the service starts; their
  // executors and stats are thread-safe. `auth` nullptr: no authentication.
  InferenceService(CallLimits limits, std::map<std::string, ServedModel, std::less<>>* models,
                   Timers* timers, ModelStats* unknown_model_stats, PeerProbe* probe,
                   const BearerAuth* auth = nullptr);

  // StartDraining: from now on new calls get UNAVAILABLE.
  void StartDraining() { draining_.store(true); }

  grpc::ServerWriteReactor<v1::PredictChunk>* PredictStream(
      grpc::CallbackServerContext* context, const v1::PredictRequest* request) override;
  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const v1::PredictRequest* request,
                                    v1::PredictResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;

  // Authenticate: OK if the call may use this service (no token is required,
  // or it carries the right one); UNAUTHENTICATED otherwise. Every method
  // checks it first.
  absl::Status Authenticate(const grpc::CallbackServerContext& context) const;

  // Admission: what a reactor needs to create its Call.
  struct Admission {
    const ServedModel* served = nullptr;
    ServedModel::Work work;
    CallOptions options;
    Timers* timers = nullptr;
  };
  // Admit: refuses the call (draining, unknown model, bad input) or decodes
  // it. Runs on the gRPC thread that received the call.
  absl::StatusOr<Admission> Admit(grpc::CallbackServerContext* context,
                                  const v1::PredictRequest& request);

  // HoldRequest: counts a request of `bytes` against the request memory
  // bound, or RESOURCE_EXHAUSTED if it does not fit; ReleaseRequest gives
  // them back when the call is done.
  absl::Status HoldRequest(uint64_t bytes);
  void ReleaseRequest(uint64_t bytes);
  // request_bytes_held: bytes of requests in flight (for metrics).
  uint64_t request_bytes_held() const { return request_bytes_held_.load(); }
  uint64_t max_request_memory_bytes() const { return limits_.max_request_memory_bytes; }

  // StatsFor: the stats of served model `model`, or of unknown models
  // (model="") for any other name.
  ModelStats* StatsFor(absl::string_view model) const;

  // Accounting of ended calls (from reactors). A call cancelled from the
  // client's side is classified as client_cancelled or disconnected by
  // looking at its connection, possibly a moment later (see RecordEnded).
  // RecordRejected takes the stats the call was started in (StatsFor when it
  // arrived).
  void RecordEnded(const CallSummary& summary);
  void RecordRejected(ModelStats* stats, Method method, const absl::Status& status);

  // FlushAccounting: classifies and records every call still waiting for a
  // second look at its connection. Called at shutdown, so that every ended
  // call is counted exactly once.
  void FlushAccounting();

 private:
  struct PendingClassification {
    PendingClassification(CallSummary s, absl::Time again)
        : summary(std::move(s)), look_again_at(again) {}
    const CallSummary summary;
    const absl::Time look_again_at;
  };
  // Classify: takes the second look at `pending`'s connection and records
  // it, unless FlushAccounting already has.
  void Classify(const std::shared_ptr<PendingClassification>& pending);
  void Account(const CallSummary& summary);

  const CallLimits limits_;
  std::map<std::string, ServedModel, std::less<>>* const models_;
  Timers* const timers_;
  ModelStats* const unknown_model_stats_;
  PeerProbe* const probe_;
  const BearerAuth* const auth_;
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> request_bytes_held_{0};
  Mutex pending_mu_;
  std::list<std::shared_ptr<PendingClassification>> pending_ ABSL_GUARDED_BY(pending_mu_);
};

}  // namespace sluice

#endif  // SLUICE_SERVICE_INFERENCE_SERVICE_H_
