#include "service/server_main.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"
#include "service/auth.h"

ABSL_FLAG(std::string, host, "127.0.0.1",
          "Address to listen on, e.g. 127.0.0.1, 0.0.0.0, ::1 or ::.");
ABSL_FLAG(int, port, 50051, "TCP port to listen on; 0 picks a free port and logs it.");
ABSL_FLAG(int, metrics_port, 9464,
          "Port for Prometheus metrics (plain HTTP, GET /metrics) on --host; 0 picks a free "
          "port and logs it; -1 serves no metrics.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the server; with --tls_key the server accepts only TLS.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificate(s): require every client to present a certificate they signed "
          "(mutual TLS). Needs --tls_cert and --tls_key.");
ABSL_FLAG(std::string, auth_token_file, "",
          "File holding a bearer token that every sluice.v1.Inference call must carry "
          "(\"authorization: Bearer <token>\"); without it, $SLUICE_AUTH_TOKEN if set. Health "
          "checks and reflection need no token.");
ABSL_FLAG(std::string, port_file, "",
          "If set, the chosen port is written to this file once the server listens.");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the metrics port is written to this file (before --port_file is).");
ABSL_FLAG(int, workers, 2, "Worker threads per model (unless --model_options says otherwise).");
ABSL_FLAG(int, max_active, 256,
          "Calls per model that may be generating at once; more wait in the queue.");
ABSL_FLAG(int, queue_capacity, 1024,
          "Calls per model that may wait for a slot; more get RESOURCE_EXHAUSTED at once.");
ABSL_FLAG(std::string, model_options, "",
          "Per-model scheduling, overriding --workers/--max_active/--queue_capacity, e.g. "
          "\"synthetic:workers=4,max_active=64,queue_capacity=512;charlm:workers=1\". Batched "
          "models (whose calls share each model step) take instead max_batch (sequences per "
          "step), max_sequences (sequences holding state, in a step or waiting on their "
          "client; 0: twice max_batch), batch_wait_us (how long a step may wait for a fuller "
          "batch; default 0) and max_state_bytes (a budget for their state), overriding the "
          "model's own limits, plus queue_capacity, e.g. "
          "\"batched_synthetic:max_batch=32,batch_wait_us=0\".");
ABSL_FLAG(int, stream_buffer_chunks, 64,
          "Encoded chunks buffered per stream; when full (or --stream_buffer_bytes is reached) "
          "the model pauses until the client has read half of them.");
ABSL_FLAG(int64_t, stream_buffer_bytes, 1 << 20,
          "Bytes of encoded chunks buffered per stream, at most (see --stream_buffer_chunks).");
ABSL_FLAG(int, write_stall_timeout_ms, 10000,
          "A stream whose client has not read for this long while its buffer is full is "
          "cancelled and its worker freed.");
ABSL_FLAG(int64_t, output_budget_bytes, 256 << 20,
          "Bound on the encoded output buffered for clients, summed over every stream; when "
          "reached, models pause until streams drain (a client that does not read is still "
          "ended as stalled). 0: no bound.");
ABSL_FLAG(int64_t, transport_memory_bytes, 512 << 20,
          "Bound on gRPC's own transport memory (connection buffers; a grpc::ResourceQuota). "
          "0: gRPC's default, unbounded.");
ABSL_FLAG(int64_t, max_request_memory_bytes, 256 << 20,
          "Bound on the bytes of requests in flight (gRPC keeps each until its call is done); a "
          "call that would pass it gets RESOURCE_EXHAUSTED. 0: no bound.");
ABSL_FLAG(int64_t, max_unary_output_bytes, 4 << 20,
          "Largest output a unary Predict may return; longer outputs need PredictStream.");
ABSL_FLAG(int, max_receive_message_bytes, 4 << 20, "Largest request message accepted.");
ABSL_FLAG(int, max_concurrent_streams, 1000, "Concurrent calls one client connection may carry.");
ABSL_FLAG(int, keepalive_time_ms, 10000,
          "Ping a connection after this long without activity (detects vanished peers).");
ABSL_FLAG(int, keepalive_timeout_ms, 10000,
          "Close a connection whose ping is not answered within this long.");
ABSL_FLAG(int, shutdown_grace_ms, 10000,
          "On SIGTERM/SIGINT, calls in flight may finish within this long; then they are "
          "cancelled.");
ABSL_FLAG(int, vlog, 0, "Verbose logging level: 1 logs every ended call.");

namespace sluice {
namespace {

// The thread that waits for the shutdown signals (in sigwait); set before
// ForwardShutdownSignal is installed.
std::atomic<pthread_t> g_signal_thread{};

// ForwardShutdownSignal: the handler of SIGINT and SIGTERM. It runs only on a
// thread that does not block them: every thread sluice starts inherits the
// mask ServerMain sets first, so that is a thread a library started before
// main (OpenBLAS starts its pool from a constructor), where the default
// action would kill the process. It passes the signal on to the signal
// thread, whose sigwait takes it.
extern "C" void ForwardShutdownSignal(int sig) { pthread_kill(g_signal_thread.load(), sig); }

absl::Status WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << port << "\n";
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::map<std::string, ModelOptions>> ParseModelOptions(
    absl::string_view spec, const ExecutorOptions& defaults) {
  std::map<std::string, ModelOptions> out;
  for (absl::string_view entry : absl::StrSplit(spec, ';', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    // MaxSplits: a second ':' or '=' stays in the value and is refused there,
    // rather than silently dropped (a pair keeps only the first two pieces).
    std::pair<absl::string_view, absl::string_view> name_rest =
        absl::StrSplit(entry, absl::MaxSplits(':', 1));
    const std::string name(absl::StripAsciiWhitespace(name_rest.first));
    if (name.empty() || entry.find(':') == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("--model_options entry \"", entry,
                                                     "\" must look like name:key=value,key=value"));
    }
    ModelOptions options;
    options.executor = defaults;
    for (absl::string_view kv : absl::StrSplit(name_rest.second, ',', absl::SkipWhitespace())) {
      std::pair<absl::string_view, absl::string_view> key_value =
          absl::StrSplit(kv, absl::MaxSplits('=', 1));
      const absl::string_view key = absl::StripAsciiWhitespace(key_value.first);
      int64_t value;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(key_value.second), &value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--model_options for ", name, ": \"", kv, "\" needs an integer value"));
      }
      const bool fits_int =
          value >= std::numeric_limits<int>::min() && value <= std::numeric_limits<int>::max();
      if (key != "max_state_bytes" && key != "batch_wait_us" && !fits_int) {
        return absl::InvalidArgumentError(
            absl::StrCat("--model_options for ", name, ": ", key, "=", value, " is out of range"));
      }
      if (key == "workers") {
        options.executor.workers = static_cast<int>(value);
        options.generator_keys.push_back("workers");
      } else if (key == "max_active") {
        options.executor.max_active = static_cast<int>(value);
        options.generator_keys.push_back("max_active");
      } else if (key == "queue_capacity") {
        options.executor.queue_capacity = static_cast<int>(value);
      } else if (key == "max_batch") {
        options.batch.max_batch = static_cast<int>(value);
      } else if (key == "max_sequences") {
        options.batch.max_sequences = static_cast<int>(value);
      } else if (key == "batch_wait_us") {
        options.batch.batch_wait = absl::Microseconds(value);
      } else if (key == "max_state_bytes") {
        if (value < 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "--model_options for ", name, ": max_state_bytes must be at least 0, got ", value));
        }
        options.batch.max_state_bytes = static_cast<uint64_t>(value);
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("--model_options for ", name, ": unknown key \"", key,
                         "\"; use workers, max_active, queue_capacity (any model) or max_batch, "
                         "max_sequences, batch_wait_us, max_state_bytes (batched models)"));
      }
    }
    if (!out.emplace(name, std::move(options)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--model_options names model ", name, " twice"));
    }
  }
  return out;
}

absl::StatusOr<ServerOptions> ServerOptionsFromFlags() {
  ServerOptions options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  if (absl::GetFlag(FLAGS_tls_cert).empty() != absl::GetFlag(FLAGS_tls_key).empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together: set both or neither");
  }
  if (!absl::GetFlag(FLAGS_tls_client_ca).empty() && absl::GetFlag(FLAGS_tls_cert).empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca (mutual TLS) needs --tls_cert and --tls_key");
  }
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  absl::StatusOr<std::string> token = LoadAuthToken(absl::GetFlag(FLAGS_auth_token_file));
  if (!token.ok()) return token.status();
  options.auth_token = *std::move(token);
  options.model_defaults.workers = absl::GetFlag(FLAGS_workers);
  options.model_defaults.max_active = absl::GetFlag(FLAGS_max_active);
  options.model_defaults.queue_capacity = absl::GetFlag(FLAGS_queue_capacity);
  absl::StatusOr<std::map<std::string, ModelOptions>> overrides =
      ParseModelOptions(absl::GetFlag(FLAGS_model_options), options.model_defaults);
  if (!overrides.ok()) return overrides.status();
  options.model_overrides = *std::move(overrides);
  const int buffer = absl::GetFlag(FLAGS_stream_buffer_chunks);
  if (buffer < 1) return absl::InvalidArgumentError("--stream_buffer_chunks must be at least 1");
  options.stream_buffer_chunks = static_cast<size_t>(buffer);
  const int64_t buffer_bytes = absl::GetFlag(FLAGS_stream_buffer_bytes);
  if (buffer_bytes < 1)
    return absl::InvalidArgumentError("--stream_buffer_bytes must be at least 1");
  options.stream_buffer_bytes = static_cast<size_t>(buffer_bytes);
  options.write_stall_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_write_stall_timeout_ms));
  const int64_t unary = absl::GetFlag(FLAGS_max_unary_output_bytes);
  if (unary < 1) return absl::InvalidArgumentError("--max_unary_output_bytes must be positive");
  options.max_unary_output_bytes = static_cast<size_t>(unary);
  const int64_t budget = absl::GetFlag(FLAGS_output_budget_bytes);
  if (budget < 0) return absl::InvalidArgumentError("--output_budget_bytes must be at least 0");
  options.output_budget_bytes = static_cast<uint64_t>(budget);
  const int64_t transport = absl::GetFlag(FLAGS_transport_memory_bytes);
  if (transport < 0) {
    return absl::InvalidArgumentError("--transport_memory_bytes must be at least 0");
  }
  options.transport_memory_bytes = static_cast<uint64_t>(transport);
  const int64_t requests = absl::GetFlag(FLAGS_max_request_memory_bytes);
  if (requests < 0) {
    return absl::InvalidArgumentError("--max_request_memory_bytes must be at least 0");
  }
  options.max_request_memory_bytes = static_cast<uint64_t>(requests);
  options.max_receive_message_bytes = absl::GetFlag(FLAGS_max_receive_message_bytes);
  options.max_concurrent_streams_per_connection = absl::GetFlag(FLAGS_max_concurrent_streams);
  options.keepalive_time = absl::Milliseconds(absl::GetFlag(FLAGS_keepalive_time_ms));
  options.keepalive_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_keepalive_timeout_ms));
  options.shutdown_grace = absl::Milliseconds(absl::GetFlag(FLAGS_shutdown_grace_ms));
  return options;
}

int ServerMain(int argc, char** argv,
               const std::function<absl::Status(ModelRegistry*)>& register_models) {
  // Block the shutdown signals before any thread starts, so that every
  // thread inherits the mask and only the signal thread below receives them
  // (but for threads started before main: see ForwardShutdownSignal).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::SetProgramUsageMessage(
      "A sluice gRPC inference server.\n"
      "Serves sluice.v1.Inference (plus grpc.health.v1.Health and server reflection) and\n"
      "stops a model's work the moment nobody wants it.");
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  FLAGS_v = absl::GetFlag(FLAGS_vlog);
  google::InitGoogleLogging(argv[0]);

  absl::StatusOr<ServerOptions> options = ServerOptionsFromFlags();
  if (!options.ok()) {
    LOG(ERROR) << options.status().message();
    return 2;
  }
  ModelRegistry registry;
  if (absl::Status s = register_models(&registry); !s.ok()) {
    LOG(ERROR) << "registering models failed: " << s;
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(*options, std::move(registry));
  if (!server.ok()) {
    LOG(ERROR) << "cannot start: " << server.status();
    return 1;
  }
  LOG(INFO) << "listening on " << (*server)->target()
            << "; try: sluice_cli --target=" << (*server)->target()
            << " --model=charlm --input='The river' --stream";
  // The metrics port first: --port_file appearing means the server is ready.
  for (const auto& [path, port] :
       {std::pair<std::string, int>{absl::GetFlag(FLAGS_metrics_port_file),
                                    (*server)->metrics_port()},
        std::pair<std::string, int>{absl::GetFlag(FLAGS_port_file), (*server)->port()}}) {
    if (path.empty()) continue;
    if (absl::Status s = WritePortFile(path, port); !s.ok()) {
      LOG(ERROR) << s;
      (*server)->Shutdown(absl::ZeroDuration());
      return 1;
    }
  }

  Server* raw = server->get();
  std::thread signal_thread([raw, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    LOG(INFO) << "received " << strsignal(sig) << "; draining (send it again to exit at once)";
    std::thread([raw] { raw->Shutdown(); }).detach();
    sigwait(&signals, &sig);
    LOG(WARNING) << "received " << strsignal(sig) << " again; exiting without draining";
    google::FlushLogFiles(google::GLOG_INFO);
    _exit(1);
  });
  g_signal_thread.store(signal_thread.native_handle());
  struct sigaction forward = {};
  forward.sa_handler = ForwardShutdownSignal;
  sigemptyset(&forward.sa_mask);
  sigaction(SIGINT, &forward, nullptr);
  sigaction(SIGTERM, &forward, nullptr);
  signal_thread.detach();  // it never returns: it exits the process, or waits to the end

  (*server)->Wait();
  const bool clean = (*server)->Shutdown();  // returns the finished shutdown's result
  if (!clean) {
    // A worker is still inside a model step; do not run destructors under it.
    google::FlushLogFiles(google::GLOG_INFO);
    _exit(1);
  }
  server->reset();
  return 0;
}

}  // namespace sluice
