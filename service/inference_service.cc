#include "service/inference_service.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "service/status.h"

namespace sluice {
namespace {

// How long after a client-side cancel its connection is looked at again.
constexpr absl::Duration kReprobeDelay = absl::Milliseconds(250);

absl::Time DeadlineOf(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

// ReactorCore: what the two Predict reactors share: admission, the link
// from gRPC's reactions to the Call, and the accounting of rejected calls.
class ReactorCore {
 public:
  ReactorCore(InferenceService* service, grpc::CallbackServerContext* context, Method method)
      : service_(service), context_(context), method_(method) {}

  // Start: admits the request and creates the call with `make_call`, or
  // returns the status to reject the RPC with.
  template <typename MakeCall>
  absl::Status Start(const v1::PredictRequest& request, MakeCall make_call) {
    // The call is accounted to its model if that is served and the caller
    // authenticated, else to the unknown-model stats: clients cannot grow
    // the metrics, and unauthenticated ones touch no model's numbers. From
    // here on it is in flight until OnDone records its end.
    const absl::Status authenticated = service_->Authenticate(*context_);
    stats_ = service_->StatsFor(authenticated.ok() ? request.model() : "");
    stats_->RecordStarted(method_);
    if (!authenticated.ok()) return Reject(authenticated);
    if (absl::Status held = service_->HoldRequest(request.ByteSizeLong()); !held.ok()) {
      return Reject(held);
    }
    held_request_bytes_ = request.ByteSizeLong();
    absl::StatusOr<InferenceService::Admission> admission = service_->Admit(context_, request);
    if (!admission.ok()) return Reject(admission.status());
    const ServedModel* served = admission->served;
    ServedModel::Work work = std::move(admission->work);
    call_ = make_call(*std::move(admission),
                      [service = service_](const CallSummary& s) { service->RecordEnded(s); });
    if (absl::Status status = served->Admit(call_, std::move(work)); !status.ok()) {
      call_.reset();
      return Reject(status);
    }
    return absl::OkStatus();
  }

  void OnCancel() {
    if (call_ != nullptr) call_->CancelByPeer();
  }

  void OnDone() {
    // The request (which gRPC keeps until now) is gone.
    service_->ReleaseRequest(held_request_bytes_);
    if (call_ == nullptr) {
      service_->RecordRejected(stats_, method_, rejected_status_);
      return;
    }
    call_->OnRpcDone();
  }

  grpc::CallbackServerContext* context() const { return context_; }
  Call* call() const { return call_.get(); }

 private:
  absl::Status Reject(absl::Status status) {
    rejected_status_ = status;
    return status;
  }

  InferenceService* const service_;
  grpc::CallbackServerContext* const context_;
  const Method method_;
  ModelStats* stats_ = nullptr;      // where this call is accounted; set by Start
  uint64_t held_request_bytes_ = 0;  // counted against the request memory budget
  std::shared_ptr<Call> call_;
  absl::Status rejected_status_;
};

// PredictStreamReactor: one PredictStream RPC. It only sequences the RPC;
// the StreamCall decides what to write and when to finish.
class PredictStreamReactor final : public grpc::ServerWriteReactor<v1::PredictChunk> {
 public:
  PredictStreamReactor(InferenceService* service, grpc::CallbackServerContext* context,
                       const v1::PredictRequest& request)
      : core_(service, context, Method::kPredictStream), sink_(this) {
    absl::Status status = core_.Start(
        request, [this](InferenceService::Admission admission, Call::EndedCallback done) {
          auto call = StreamCall::Create(std::move(admission.options), admission.timers,
                                         admission.served->stats.get(), &sink_, std::move(done));
          stream_call_ = call.get();
          return call;
        });
    if (!status.ok()) Finish(ToGrpcStatus(status));
    SLUICE_HAPPENS_BEFORE(this);  // construction precedes every reaction
  }

  void OnWriteDone(bool ok) override {
    SLUICE_HAPPENS_AFTER(this);
    stream_call_->OnWriteDone(ok);
    SLUICE_HAPPENS_BEFORE(this);  // every reaction precedes OnDone
  }
  void OnCancel() override {
    SLUICE_HAPPENS_AFTER(this);
    core_.OnCancel();
    SLUICE_HAPPENS_BEFORE(this);
  }
  void OnDone() override {
    SLUICE_HAPPENS_AFTER(this);
    core_.OnDone();
    delete this;
  }

 private:
  class Sink final : public StreamSink {
   public:
    explicit Sink(PredictStreamReactor* reactor) : reactor_(reactor) {}
    bool IsCancelled() const override { return reactor_->core_.context()->IsCancelled(); }
    void TryCancel() override {
      SLUICE_HAPPENS_BEFORE(reactor_);
      reactor_->core_.context()->TryCancel();
    }
    void StartWrite(const v1::PredictChunk* chunk, bool buffer_hint) override {
      SLUICE_HAPPENS_BEFORE(reactor_);  // the chunk is ready before gRPC reads it
      if (buffer_hint) {
        reactor_->StartWrite(chunk, grpc::WriteOptions().set_buffer_hint());
      } else {
        reactor_->StartWrite(chunk);
      }
    }
    void Finish(const absl::Status& status) override {
      SLUICE_HAPPENS_BEFORE(reactor_);
      reactor_->Finish(ToGrpcStatus(status));
    }

   private:
    PredictStreamReactor* const reactor_;
  };

  ReactorCore core_;
  Sink sink_;
  StreamCall* stream_call_ = nullptr;  // owned through core_
};

// PredictUnaryReactor: one Predict RPC.
class PredictUnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  PredictUnaryReactor(InferenceService* service, grpc::CallbackServerContext* context,
                      const v1::PredictRequest& request, v1::PredictResponse* response)
      : core_(service, context, Method::kPredict), response_(response), sink_(this) {
    absl::Status status = core_.Start(
        request, [this](InferenceService::Admission admission, Call::EndedCallback done) {
          return UnaryCall::Create(std::move(admission.options), admission.timers,
                                   admission.served->stats.get(), &sink_, std::move(done));
        });
    if (!status.ok()) Finish(ToGrpcStatus(status));
    SLUICE_HAPPENS_BEFORE(this);  // construction precedes every reaction
  }

  void OnCancel() override {
    SLUICE_HAPPENS_AFTER(this);
    core_.OnCancel();
    SLUICE_HAPPENS_BEFORE(this);  // every reaction precedes OnDone
  }
  void OnDone() override {
    SLUICE_HAPPENS_AFTER(this);
    core_.OnDone();
    delete this;
  }

 private:
  class Sink final : public UnarySink {
   public:
    explicit Sink(PredictUnaryReactor* reactor) : reactor_(reactor) {}
    bool IsCancelled() const override { return reactor_->core_.context()->IsCancelled(); }
    void TryCancel() override {
      SLUICE_HAPPENS_BEFORE(reactor_);
      reactor_->core_.context()->TryCancel();
    }
    void Finish(const absl::Status& status, const v1::PredictResponse* response) override {
      if (response != nullptr) *reactor_->response_ = *response;
      SLUICE_HAPPENS_BEFORE(reactor_);  // the response is ready before gRPC reads it
      reactor_->Finish(ToGrpcStatus(status));
    }

   private:
    PredictUnaryReactor* const reactor_;
  };

  ReactorCore core_;
  v1::PredictResponse* const response_;
  Sink sink_;
};

}  // namespace

InferenceService::InferenceService(CallLimits limits,
                                   std::map<std::string, ServedModel, std::less<>>* models,
                                   Timers* timers, ModelStats* unknown_model_stats,
                                   PeerProbe* probe, const BearerAuth* auth)
    : limits_(limits),
      models_(models),
      timers_(timers),
      unknown_model_stats_(unknown_model_stats),
      probe_(probe),
      auth_(auth) {}

absl::Status InferenceService::Authenticate(const grpc::CallbackServerContext& context) const {
  if (auth_ == nullptr) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return auth_->Check(std::nullopt);
  return auth_->Check(absl::string_view(it->second.data(), it->second.size()));
}

absl::StatusOr<InferenceService::Admission> InferenceService::Admit(
    grpc::CallbackServerContext* context, const v1::PredictRequest& request) {
  if (draining_.load()) {
    return absl::UnavailableError("the server is shutting down; retry on another replica");
  }
  auto it = models_->find(request.model());
  if (it == models_->end()) {
    std::vector<std::string> names;
    for (const auto& entry : *models_) names.push_back(entry.first);
    if (request.model().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PredictRequest.model is empty; set it to one of: ", absl::StrJoin(names, ", ")));
    }
    return absl::NotFoundError(
        absl::StrCat("no model named \"", absl::CHexEscape(request.model().substr(0, 128)),
                     "\"; this server serves: ", absl::StrJoin(names, ", ")));
  }
  ServedModel* served = &it->second;
  const absl::Time deadline = DeadlineOf(context);
  if (deadline <= absl::Now()) {
    return absl::DeadlineExceededError("the call's deadline had passed before it was admitted");
  }
  absl::StatusOr<ServedModel::Work> work = served->Prepare(request);
  if (!work.ok()) {
    // Whatever the model returned, an admission failure is a rejection; keep
    // its code when it chose one.
    return work.status();
  }
  Admission admission;
  admission.served = served;
  admission.work = *std::move(work);
  admission.options.model = served->name;
  admission.options.request_id = request.request_id();
  admission.options.peer = context->peer();
  admission.options.input_bytes = request.input().size();
  admission.options.deadline = deadline;
  admission.options.stream_buffer_chunks = limits_.stream_buffer_chunks;
  admission.options.stream_buffer_bytes = limits_.stream_buffer_bytes;
  admission.options.write_stall_timeout = limits_.write_stall_timeout;
  admission.options.max_unary_output_bytes = limits_.max_unary_output_bytes;
  admission.options.output_budget = limits_.output_budget;
  admission.timers = timers_;
  return admission;
}

absl::Status InferenceService::HoldRequest(uint64_t bytes) {
  if (limits_.max_request_memory_bytes == 0) return absl::OkStatus();
  const uint64_t held = request_bytes_held_.fetch_add(bytes) + bytes;
  if (held <= limits_.max_request_memory_bytes) return absl::OkStatus();
  request_bytes_held_.fetch_sub(bytes);
  return absl::ResourceExhaustedError(
      absl::StrCat("the server holds ", held - bytes, " bytes of requests in flight; this one (",
                   bytes, " bytes) would pass its --max_request_memory_bytes (",
                   limits_.max_request_memory_bytes, "); retry later"));
}

void InferenceService::ReleaseRequest(uint64_t bytes) {
  if (limits_.max_request_memory_bytes != 0 && bytes > 0) request_bytes_held_.fetch_sub(bytes);
}

ModelStats* InferenceService::StatsFor(absl::string_view model) const {
  auto it = models_->find(model);
  return it == models_->end() ? unknown_model_stats_ : it->second.stats.get();
}

void InferenceService::RecordEnded(const CallSummary& summary) {
  if (summary.cause != EndCause::kClientCancelled) {
    Account(summary);
    return;
  }
  // A cancel from the client's side: did the client cancel, or did its
  // connection fail (a dead process, a keepalive timeout)? A failed
  // connection is shut down by gRPC around the time the call is cancelled,
  // so one that still looks up is looked at once more a moment later.
  // A reading of the connection table taken after the cancel was seen serves
  // every call cancelled before it: a storm of cancels costs a few readings.
  const std::optional<bool> connected = probe_->IsConnected(summary.peer, summary.cancelled_at);
  if (connected != true) {
    CallSummary classified = summary;
    if (connected == false) classified.cause = EndCause::kDisconnected;
    Account(classified);
    return;
  }
  const absl::Time again = absl::Now() + kReprobeDelay;
  auto pending = std::make_shared<PendingClassification>(summary, again);
  {
    MutexLock lock(&pending_mu_);
    pending_.push_back(pending);
  }
  timers_->RunAt(again, [this, pending] { Classify(pending); });
}

void InferenceService::Classify(const std::shared_ptr<PendingClassification>& pending) {
  // The look at the connection is taken outside pending_mu_, which cancels
  // ending on other threads need. Once the server drains it closes
  // connections itself: a second look then would see a client that
  // cancelled as gone.
  CallSummary summary = pending->summary;
  if (!draining_.load() && probe_->IsConnected(summary.peer, pending->look_again_at) == false) {
    summary.cause = EndCause::kDisconnected;
  }
  // Recorded under pending_mu_, and only if still pending: FlushAccounting
  // may have recorded it meanwhile, and must not return while a timer is
  // half-way through recording a call.
  MutexLock lock(&pending_mu_);
  auto it = std::find(pending_.begin(), pending_.end(), pending);
  if (it == pending_.end()) return;
  pending_.erase(it);
  Account(summary);
}

void InferenceService::FlushAccounting() {
  // At shutdown the server has closed every connection itself, so a second
  // look would see them all gone: keep the first look's answer (connected).
  MutexLock lock(&pending_mu_);
  for (const auto& pending : pending_) Account(pending->summary);
  pending_.clear();
}

void InferenceService::Account(const CallSummary& summary) {
  StatsFor(summary.model)
      ->RecordEnded(summary.method, summary.cause, summary.stage, summary.status.code());
  VLOG(1) << MethodName(summary.method) << " model=" << summary.model
          << (summary.request_id.empty() ? "" : " request_id=" + summary.request_id)
          << " ended=" << EndCauseName(summary.cause) << " stage=" << EndStageName(summary.stage)
          << " code=" << StatusCodeName(summary.status.code()) << " chunks=" << summary.chunks
          << " chunks_after_cancel=" << summary.chunks_after_cancel
          << " queue_ms=" << absl::ToDoubleMilliseconds(summary.queue_time)
          << " run_ms=" << absl::ToDoubleMilliseconds(summary.run_time) << " peer=" << summary.peer;
}

void InferenceService::RecordRejected(ModelStats* stats, Method method,
                                      const absl::Status& status) {
  stats->RecordEnded(method, EndCause::kRejected, EndStage::kAdmission, status.code());
  VLOG(1) << MethodName(method) << " model=" << stats->model() << " rejected: " << status;
}

grpc::ServerWriteReactor<v1::PredictChunk>* InferenceService::PredictStream(
    grpc::CallbackServerContext* context, const v1::PredictRequest* request) {
  return new PredictStreamReactor(this, context, *request);
}

grpc::ServerUnaryReactor* InferenceService::Predict(grpc::CallbackServerContext* context,
                                                    const v1::PredictRequest* request,
                                                    v1::PredictResponse* response) {
  return new PredictUnaryReactor(this, context, *request, response);
}

grpc::ServerUnaryReactor* InferenceService::ListModels(grpc::CallbackServerContext* context,
                                                       const v1::ListModelsRequest* /*request*/,
                                                       v1::ListModelsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status status = Authenticate(*context); !status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  for (const auto& [name, served] : *models_) {
    v1::ModelInfo* info = response->add_models();
    info->set_name(name);
    info->set_description(served.model->description());
    for (const ParameterSpec& spec : served.model->parameters().specs()) {
      v1::ParameterInfo* param = info->add_parameters();
      param->set_name(spec.name());
      param->set_type(std::string(spec.type_name()));
      param->set_description(spec.description());
    }
    if (served.executor != nullptr) {
      info->set_workers(served.executor->options().workers);
      info->set_max_active(served.executor->options().max_active);
    } else {
      info->set_workers(1);  // the batch loop
      info->set_max_active(served.batcher->max_sequences());
      info->set_max_batch(served.batcher->options().limits.max_batch);
    }
    info->set_queue_capacity(served.queue_capacity());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace sluice
