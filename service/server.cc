#include "service/server.h"

#include <chrono>
#include <exception>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "handlers/timer_queue.h"
#include "service/auth.h"
#include "service/inference_service.h"
#include "service/metrics_http.h"
#include "service/peer_probe.h"
#include "service/server_metrics.h"
#include "service/tls.h"

namespace sluice {
namespace {

// After the drain, cancelled calls finish within moments; gRPC resets what a
// stalled client still holds after this long.
constexpr absl::Duration kFinishTimeout = absl::Seconds(1);
// How long workers get to leave their last model step once all calls ended.
constexpr absl::Duration kWorkerStopTimeout = absl::Seconds(10);

constexpr char kServiceName[] = "sluice.v1.Inference";

std::string HostPort(absl::string_view host, int port) {
  if (host.find(':') != absl::string_view::npos && !absl::StartsWith(host, "[")) {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

bool IsLoopback(absl::string_view host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || absl::StartsWith(host, "127.");
}

absl::Status Validate(const ServerOptions& o) {
  auto invalid = [](auto... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (o.port < 0 || o.port > 65535) return invalid("port must be 0..65535, got ", o.port);
  if (o.metrics_port < -1 || o.metrics_port > 65535) {
    return invalid("metrics_port must be 0..65535, or -1 for no metrics; got ", o.metrics_port);
  }
  if (o.host.empty()) return invalid("host must not be empty");
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return invalid("tls_cert_file and tls_key_file go together: set both or neither");
  }
  if (!o.tls_client_ca_file.empty() && o.tls_cert_file.empty()) {
    return invalid("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file");
  }
  if (o.stream_buffer_chunks < 1) return invalid("stream_buffer_chunks must be at least 1");
  if (o.stream_buffer_bytes < 1) return invalid("stream_buffer_bytes must be at least 1");
  if (o.write_stall_timeout <= absl::ZeroDuration())
    return invalid("write_stall_timeout must be positive");
  if (o.max_receive_message_bytes < 1) return invalid("max_receive_message_bytes must be positive");
  if (o.max_concurrent_streams_per_connection < 1) {
    return invalid("max_concurrent_streams_per_connection must be positive");
  }
  if (o.keepalive_time <= absl::ZeroDuration() || o.keepalive_timeout <= absl::ZeroDuration()) {
    return invalid("keepalive_time and keepalive_timeout must be positive");
  }
  auto check = [&](const std::string& who, const ExecutorOptions& e) -> absl::Status {
    if (e.workers < 1 || e.workers > 1024)
      return invalid(who, ": workers must be 1..1024, got ", e.workers);
    if (e.max_active < 1)
      return invalid(who, ": max_active must be at least 1, got ", e.max_active);
    if (e.queue_capacity < 0)
      return invalid(who, ": queue_capacity must be at least 0, got ", e.queue_capacity);
    return absl::OkStatus();
  };
  if (absl::Status s = check("model defaults", o.model_defaults); !s.ok()) return s;
  for (const auto& [name, e] : o.model_overrides) {
    if (absl::Status s = check("model " + name, e.executor); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// BatchOptionsFor: a batched model's own limits with the operator's
// overrides, checked.
absl::StatusOr<BatchOptions> BatchOptionsFor(const std::string& name, const BatchedModelBase& model,
                                             const ModelOptions& options) {
  if (!options.generator_keys.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model ", name, " is batched (one loop steps all its calls together): ",
        absl::StrJoin(options.generator_keys, " and "),
        " do not apply to it; use max_batch, max_sequences, batch_wait_us, max_state_bytes "
        "and queue_capacity"));
  }
  BatchOptions batch;
  batch.limits = model.limits();
  batch.queue_capacity = options.executor.queue_capacity;
  const BatchOverrides& o = options.batch;
  if (o.max_batch) batch.limits.max_batch = *o.max_batch;
  if (o.max_sequences) batch.limits.max_sequences = *o.max_sequences;
  if (o.batch_wait) batch.limits.batch_wait = *o.batch_wait;
  if (o.max_state_bytes) batch.limits.max_state_bytes = *o.max_state_bytes;
  const BatchLimits& l = batch.limits;
  if (l.max_batch < 1 || l.max_batch > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("model ", name, ": max_batch must be 1..4096, got ", l.max_batch));
  }
  if (l.max_sequences != 0 && (l.max_sequences < l.max_batch || l.max_sequences > 1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model ", name, ": max_sequences must be at least max_batch (", l.max_batch,
                     ") and at most 1048576, or 0 for twice max_batch; got ", l.max_sequences));
  }
  if (l.batch_wait < absl::ZeroDuration() || l.batch_wait > absl::Seconds(10)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model ", name, ": batch_wait must be 0..10 s, got ", absl::FormatDuration(l.batch_wait)));
  }
  return batch;
}

}  // namespace

Server::Server(ServerOptions options, ModelRegistry registry)
    : options_(std::move(options)), registry_(std::move(registry)) {}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options,
                                                      ModelRegistry registry) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  // Debian's Abseil is built with its debug checks, and gRPC's mutexes are
  // absl::Mutex: every lock and unlock records the lock in a process-wide
  // graph behind one global lock (deadlock detection), on every thread and
  // every message. sluice's own locks are not absl::Mutex; the check is for
  // gRPC's internal lock order, which its own tests cover.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (registry.empty()) return absl::InvalidArgumentError("no models are registered");
  for (const auto& entry : options.model_overrides) {
    if (registry.Find(entry.first) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "options were given for model ", entry.first,
          ", which is not registered; models: ", absl::StrJoin(registry.names(), ", ")));
    }
  }
  auto server = absl::WrapUnique(new Server(std::move(options), std::move(registry)));
  if (absl::Status s = server->Init(); !s.ok()) return s;
  return server;
}

absl::Status Server::Init() {
  for (const std::string& name : registry_.names()) {
    ModelBase* model = registry_.Find(name);
    absl::Status status;
    try {
      status = model->Setup();
    } catch (const std::exception& e) {
      status = absl::InternalError(absl::StrCat("Setup threw: ", e.what()));
    } catch (...) {
      status = absl::InternalError("Setup threw");
    }
    if (!status.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("model ", name, " failed to set up: ", status.ToString()));
    }
  }

  timers_ = std::make_unique<TimerQueue>();
  if (options_.output_budget_bytes > 0) {
    output_budget_ = std::make_unique<OutputBudget>(options_.output_budget_bytes);
  }
  for (const std::string& name : registry_.names()) {
    auto it = options_.model_overrides.find(name);
    ModelOptions model_options;
    model_options.executor = options_.model_defaults;
    if (it != options_.model_overrides.end()) model_options = it->second;
    ServedModel& served = models_[name];
    served.name = name;
    served.model = registry_.Find(name);
    served.stats = std::make_unique<ModelStats>(name);
    served.generator_model = dynamic_cast<GeneratorModelBase*>(served.model);
    served.batched_model = dynamic_cast<BatchedModelBase*>(served.model);
    if (served.batched_model != nullptr) {
      absl::StatusOr<BatchOptions> batch =
          BatchOptionsFor(name, *served.batched_model, model_options);
      if (!batch.ok()) return batch.status();
      served.batcher = std::make_unique<BatchScheduler>(name, served.batched_model, *batch);
      served.batcher->Start();
    } else if (served.generator_model != nullptr) {
      if (!model_options.batch.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("model ", name,
                         " runs one generator per call: max_batch, max_sequences, "
                         "batch_wait_us and max_state_bytes apply to batched models only"));
      }
      served.executor = std::make_unique<Executor>(name, model_options.executor);
      served.executor->Start();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "model ", name, " derives from neither sluice::Model nor sluice::BatchedModel"));
    }
  }
  unknown_model_stats_ = std::make_unique<ModelStats>("");
  probe_ = std::make_unique<PeerProbe>();
  if (!options_.auth_token.empty()) {
    absl::StatusOr<BearerAuth> auth = BearerAuth::Create(options_.auth_token);
    if (!auth.ok()) return auth.status();
    auth_ = std::make_unique<BearerAuth>(*std::move(auth));
  }
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options_.tls_cert_file.empty()) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> tls = ServerTlsCredentials(
        {options_.tls_cert_file, options_.tls_key_file, options_.tls_client_ca_file});
    if (!tls.ok()) return tls.status();
    credentials = *std::move(tls);
  }

  CallLimits limits;
  limits.stream_buffer_chunks = options_.stream_buffer_chunks;
  limits.stream_buffer_bytes = options_.stream_buffer_bytes;
  limits.write_stall_timeout = options_.write_stall_timeout;
  limits.max_unary_output_bytes = options_.max_unary_output_bytes;
  limits.output_budget = output_budget_.get();
  limits.max_request_memory_bytes = options_.max_request_memory_bytes;
  service_ = std::make_unique<InferenceService>(
      limits, &models_, timers_.get(), unknown_model_stats_.get(), probe_.get(), auth_.get());

  if (options_.metrics_port >= 0) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> metrics =
        MetricsHttpServer::Start(options_.host, options_.metrics_port, [this] {
          return RenderServerMetrics(models_, *unknown_model_stats_, output_budget_.get(),
                                     service_.get());
        });
    if (!metrics.ok()) return metrics.status();
    metrics_ = *std::move(metrics);
    metrics_port_ = metrics_->port();
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = HostPort(options_.host, options_.port);
  builder.AddListeningPort(address, credentials, &port_);
  builder.SetMaxReceiveMessageSize(options_.max_receive_message_bytes);
  if (options_.transport_memory_bytes > 0) {
    // Bounds what gRPC itself holds for every connection (read and write
    // buffers); past it gRPC shrinks its buffers and refuses new streams.
    grpc::ResourceQuota quota("sluice");
    quota.Resize(options_.transport_memory_bytes);
    builder.SetResourceQuota(quota);
  }
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             options_.max_concurrent_streams_per_connection);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(options_.keepalive_time)));
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options_.keepalive_timeout)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Keep pinging a peer that receives nothing (e.g. a stalled or vanished one).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Let clients keep their own connections alive every 10 s or more.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.RegisterService(service_.get());
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, " (address in use or not available?)"));
  }
  probe_->set_local_address(options_.host, port_);

  grpc::HealthCheckServiceInterface* health = grpc_server_->GetHealthCheckService();
  health->SetServingStatus(kServiceName, true);
  for (const auto& entry : models_) {
    health->SetServingStatus(absl::StrCat(kServiceName, "/", entry.first), true);
  }
  LOG(INFO) << "sluice serving " << absl::StrJoin(registry_.names(), ", ") << " on "
            << HostPort(options_.host, port_) << " ("
            << (options_.tls_cert_file.empty()
                    ? "plaintext"
                    : (options_.tls_client_ca_file.empty() ? "TLS" : "mutual TLS"))
            << (auth_ != nullptr ? ", bearer token required)" : ")");
  if (auth_ != nullptr && options_.tls_cert_file.empty() && !IsLoopback(options_.host)) {
    LOG(WARNING) << "a bearer token is required but the server is not using TLS: tokens "
                    "cross the network in clear text (set --tls_cert and --tls_key)";
  }
  if (metrics_ != nullptr) {
    LOG(INFO) << "metrics on http://" << HostPort(options_.host, metrics_port_) << "/metrics";
  }
  return absl::OkStatus();
}

Server::~Server() {
  bool clean;
  {
    MutexLock lock(&mu_);
    clean = shutdown_started_ ? shutdown_clean_ : true;
  }
  if (grpc_server_ != nullptr) clean = Shutdown(absl::ZeroDuration());
  if (clean) {
    // First: a timer still due (a second look at a connection) must not run
    // once the service it calls into is gone.
    timers_.reset();
  } else {
    // A worker is still inside a model step: everything it may touch on its
    // way out stays alive for the rest of the process.
    for (auto& entry : models_) {
      entry.second.executor.release();
      entry.second.batcher.release();
      entry.second.stats.release();
    }
    output_budget_.release();
    timers_.release();
    new ModelRegistry(std::move(registry_));
  }
}

std::string Server::target() const {
  // A wildcard address is dialled on loopback.
  if (options_.host == "0.0.0.0") return HostPort("127.0.0.1", port_);
  if (options_.host == "::") return HostPort("::1", port_);
  return HostPort(options_.host, port_);
}

bool Server::Shutdown(absl::Duration grace) {
  {
    MutexLock lock(&mu_);
    if (shutdown_started_) {
      while (!shutdown_done_) done_cv_.Wait(&mu_);
      return shutdown_clean_;
    }
    shutdown_started_ = true;
  }
  LOG(INFO) << "shutting down: new calls get UNAVAILABLE; calls in flight have "
            << absl::FormatDuration(grace) << " to finish";
  service_->StartDraining();
  grpc_server_->GetHealthCheckService()->SetServingStatus(false);

  const absl::Time drain_deadline = absl::Now() + grace;
  for (auto& entry : models_) entry.second.WaitIdle(drain_deadline);
  for (auto& entry : models_) entry.second.CancelAll(EndCause::kShutdown);
  grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + kFinishTimeout));

  bool clean = true;
  for (auto& entry : models_) {
    clean &= entry.second.Stop(absl::Now() + kWorkerStopTimeout);
  }
  service_->FlushAccounting();
  // Metrics stay up through the drain, for watching it.
  metrics_.reset();
  LOG(INFO) << "shutdown " << (clean ? "complete" : "incomplete: a model step never returned");
  MutexLock lock(&mu_);
  shutdown_done_ = true;
  shutdown_clean_ = clean;
  done_cv_.SignalAll();
  return clean;
}

void Server::Wait() {
  MutexLock lock(&mu_);
  while (!shutdown_done_) done_cv_.Wait(&mu_);
}

const ModelStats* Server::stats(absl::string_view model) const {
  auto it = models_.find(model);
  return it == models_.end() ? nullptr : it->second.stats.get();
}

const Executor* Server::executor(absl::string_view model) const {
  auto it = models_.find(model);
  return it == models_.end() ? nullptr : it->second.executor.get();
}

const BatchScheduler* Server::batcher(absl::string_view model) const {
  auto it = models_.find(model);
  return it == models_.end() ? nullptr : it->second.batcher.get();
}

const ServedModel* Server::served(absl::string_view model) const {
  auto it = models_.find(model);
  return it == models_.end() ? nullptr : &it->second;
}

std::vector<std::string> Server::model_names() const { return registry_.names(); }

}  // namespace sluice
