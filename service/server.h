#ifndef SLUICE_SERVICE_SERVER_H_
#define SLUICE_SERVICE_SERVER_H_

// The sluice server as a library: register models, start, wait, shut down.
//
//   sluice::ModelRegistry registry;
//   registry.Register("shout", std::make_unique<Shout>());
//   sluice::ServerOptions options;
//   options.port = 50051;
//   auto server = sluice::Server::Start(options, std::move(registry));
//   if (!server.ok()) { LOG(ERROR) << server.status(); return 1; }
//   (*server)->Wait();  // until Shutdown, e.g. from a signal handler thread

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "handlers/batch_scheduler.h"
#include "handlers/executor.h"
#include "handlers/output_budget.h"
#include "handlers/stats.h"
#include "models/registry.h"
#include "models/sync.h"
#include "service/served_model.h"

namespace grpc {
class Server;
}

namespace sluice {

class BearerAuth;
class InferenceService;
class MetricsHttpServer;
class PeerProbe;
class TimerQueue;

// BatchOverrides: per-model overrides of a batched model's own limits
// (BatchedModelBase::limits); unset fields keep the model's values.
struct BatchOverrides {
  std::optional<int> max_batch;
  std::optional<int> max_sequences;
  std::optional<absl::Duration> batch_wait;
  std::optional<uint64_t> max_state_bytes;
  bool empty() const { return !max_batch && !max_sequences && !batch_wait && !max_state_bytes; }
};

// ModelOptions: one model's scheduling. A generator model uses `executor`; a
// batched model uses `batch` and executor.queue_capacity (its one loop has
// no workers to set).
struct ModelOptions {
  ExecutorOptions executor;
  BatchOverrides batch;
  // generator_keys: keys that apply to generator models only (workers,
  // max_active) that were given explicitly, so that the server can refuse
  // them for a batched model rather than ignore them.
  std::vector<std::string> generator_keys;
};

// ServerOptions: everything a sluice server can be told. Defaults suit a
// development machine; each field says what it bounds.
struct ServerOptions {
  // Address to listen on: "127.0.0.1", "0.0.0.0", "::", "::1", a host name.
  std::string host = "127.0.0.1";
  // TCP port; 0 picks a free one (see Server::port()).
  int port = 50051;
  // Port of the Prometheus endpoint (http://host:metrics_port/metrics, plain
  // HTTP on the same host); 0 picks a free one (see Server::metrics_port());
  // -1 serves no metrics.
  int metrics_port = -1;

  // TLS from PEM files. With tls_cert_file and tls_key_file the server
  // accepts only TLS; with tls_client_ca_file too, only clients presenting a
  // certificate that CA signed (mutual TLS). All empty: plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // A token every sluice.v1.Inference call must carry as the metadata
  // "authorization: Bearer <token>"; others get UNAUTHENTICATED before any
  // model sees them. Empty: no authentication. grpc.health.v1.Health and
  // server reflection answer without it (load balancers probe health).
  std::string auth_token;

  // Scheduling of every model unless overridden below.
  ExecutorOptions model_defaults;
  // Per-model scheduling, by model name.
  std::map<std::string, ModelOptions> model_overrides;

  // Encoded chunks buffered per stream (counting the one being written), and
  // the bytes they may add up to. When either is reached the model is not
  // asked for more until the client has read half of it.
  size_t stream_buffer_chunks = 64;
  size_t stream_buffer_bytes = 1 << 20;
  // A client that has not taken a chunk for this long while its buffer is
  // full is stalled: its stream is cancelled and its generator released.
  absl::Duration write_stall_timeout = absl::Seconds(10);
  // A bound on the encoded output buffered for clients, summed over every
  // stream: when reached, models pause (backpressure) instead of buffering
  // more, until streams drain. 0: no bound.
  uint64_t output_budget_bytes = 256 << 20;
  // gRPC's own memory for its transport (grpc::ResourceQuota): buffers of
  // every connection. 0: gRPC's default (no quota).
  uint64_t transport_memory_bytes = 512 << 20;
  // A bound on the bytes of requests in flight (gRPC keeps each parsed
  // request until its call is done; a model usually holds a copy of its
  // input too): a call that would pass it is refused with
  // RESOURCE_EXHAUSTED. 0: no bound.
  uint64_t max_request_memory_bytes = 256 << 20;
  // Largest output a unary Predict may return (PredictStream has no limit).
  size_t max_unary_output_bytes = 4 << 20;
  // Largest request message accepted.
  int max_receive_message_bytes = 4 << 20;
  // Concurrent streams (calls) one HTTP/2 connection may carry.
  int max_concurrent_streams_per_connection = 1000;

  // Server keepalive: a ping after this much time without activity...
  absl::Duration keepalive_time = absl::Seconds(10);
  // ...and the connection is closed if it is not answered within this. A
  // vanished peer is thus detected within about time + timeout.
  absl::Duration keepalive_timeout = absl::Seconds(10);

  // How long Shutdown lets calls in flight finish before cancelling them
  // (used by Server::Shutdown() without an argument).
  absl::Duration shutdown_grace = absl::Seconds(10);
};

// Server: a running sluice server.
class Server {
 public:
  // Start: sets up every model (Model::Setup), then starts serving.
  // Fails if a model fails to set up, an option is invalid, or the address
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options,
                                                       ModelRegistry registry);

  // Shuts down (with no grace) if Shutdown was not called.
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // port: the port the server listens on (the chosen one if 0 was asked).
  int port() const { return port_; }
  // target: "host:port" for a client on this machine to dial.
  std::string target() const;
  // metrics_port: the port /metrics is served on, or -1 if it is not.
  int metrics_port() const { return metrics_port_; }

  // Shutdown: drains and stops the server. New calls are refused with
  // UNAVAILABLE at once; calls in flight may finish within `grace`; then the
  // rest are cancelled (clients still listening get UNAVAILABLE), every
  // generator is released and the workers stop. Returns false if a model
  // step did not return (its worker is left behind; exit the process).
  // Thread-safe and idempotent; not to be called from a gRPC callback.
  bool Shutdown(absl::Duration grace);
  bool Shutdown() { return Shutdown(options_.shutdown_grace); }

  // Wait: blocks until Shutdown has finished.
  void Wait();

  // stats/executor/batcher: per model, for tests, metrics and tools.
  // nullptr if unknown (or, for executor/batcher, of the other kind).
  const ModelStats* stats(absl::string_view model) const;
  const Executor* executor(absl::string_view model) const;
  const BatchScheduler* batcher(absl::string_view model) const;
  const ServedModel* served(absl::string_view model) const;
  // output_budget: the server-wide output budget, or nullptr if unbounded.
  const OutputBudget* output_budget() const { return output_budget_.get(); }
  // ModelNames: the served models, sorted.
  std::vector<std::string> model_names() const;

 private:
  Server(ServerOptions options, ModelRegistry registry);
  absl::Status Init();

  const ServerOptions options_;
  ModelRegistry registry_;
  std::unique_ptr<TimerQueue> timers_;
  std::unique_ptr<OutputBudget> output_budget_;
  std::map<std::string, ServedModel, std::less<>> models_;
  std::unique_ptr<ModelStats> unknown_model_stats_;
  std::unique_ptr<PeerProbe> probe_;
  std::unique_ptr<BearerAuth> auth_;  // null: no authentication
  std::unique_ptr<InferenceService> service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  int metrics_port_ = -1;

  Mutex mu_;
  CondVar done_cv_;
  bool shutdown_started_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_done_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_clean_ ABSL_GUARDED_BY(mu_) = true;

  // Last, so that it stops before what it reads (models_) goes away.
  std::unique_ptr<MetricsHttpServer> metrics_;
};

}  // namespace sluice

#endif  // SLUICE_SERVICE_SERVER_H_
