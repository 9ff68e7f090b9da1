// raw_stream_server: the baseline sluice is measured against. A minimal gRPC
// C++ server-streaming service on the callback API, with sluice's own wire
// contract (sluice.v1.Inference/PredictStream) and the synthetic model's
// zero-cost output, so that a client cannot tell the two apart by the bytes:
// chunk i carries "t<i> " (or `chunk_bytes` bytes), and the last message
// carries the finish reason and usage.
//
// What it leaves out is what sluice adds: no model, no workers, no queue, no
// buffer, no accounting. Each reactor writes its next message from the
// previous write's completion, one write outstanding, the way gRPC's own
// route_guide callback example streams.
//
//   raw_stream_server --port=0 --port_file=/tmp/raw.port
//
// Only the parameters `tokens` and `chunk_bytes` are read; others are ignored.

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "sluice/v1/inference.grpc.pb.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, port, 0, "TCP port; 0 picks a free one (see --port_file).");
ABSL_FLAG(std::string, port_file, "", "Write the chosen port here once listening.");
ABSL_FLAG(int, max_concurrent_streams, 1000, "Concurrent calls one connection may carry.");

namespace sluice {
namespace {

int64_t IntParam(const v1::PredictRequest& request, const std::string& name, int64_t fallback) {
  auto it = request.parameters().find(name);
  if (it == request.parameters().end()) return fallback;
  return it->second.int64_param();
}

class Writer final : public grpc::ServerWriteReactor<v1::PredictChunk> {
 public:
  Writer(const v1::PredictRequest& request)
      : tokens_(IntParam(request, "tokens", 16)),
        chunk_bytes_(IntParam(request, "chunk_bytes", 0)),
        request_id_(request.request_id()) {
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    if (finishing_) {
      Finish(grpc::Status::OK);
      return;
    }
    Next();
  }

  void OnCancel() override {}  // the failed write that follows finishes the call
  void OnDone() override { delete this; }

 private:
  void Next() {
    chunk_.Clear();
    chunk_.set_index(static_cast<uint64_t>(index_));
    if (index_ < tokens_) {
      std::string* out = chunk_.mutable_output();
      *out = absl::StrCat("t", index_, " ");
      if (chunk_bytes_ > 0) out->resize(static_cast<size_t>(chunk_bytes_), '.');
      output_bytes_ += out->size();
      ++index_;
    } else {
      chunk_.set_finish_reason(v1::FINISH_REASON_LENGTH);
      chunk_.set_request_id(request_id_);
      chunk_.mutable_usage()->set_output_chunks(static_cast<uint64_t>(tokens_));
      chunk_.mutable_usage()->set_output_bytes(output_bytes_);
      finishing_ = true;
    }
    StartWrite(&chunk_);
  }

  const int64_t tokens_;
  const int64_t chunk_bytes_;
  const std::string request_id_;
  int64_t index_ = 0;
  uint64_t output_bytes_ = 0;
  bool finishing_ = false;
  v1::PredictChunk chunk_;
};

class RawService final : public v1::Inference::CallbackService {
  grpc::ServerWriteReactor<v1::PredictChunk>* PredictStream(
      grpc::CallbackServerContext* /*context*/, const v1::PredictRequest* request) override {
    return new Writer(*request);
  }
};

int Run() {
  RawService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::StrCat(absl::GetFlag(FLAGS_host), ":", absl::GetFlag(FLAGS_port)),
                           grpc::InsecureServerCredentials(), &port);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             absl::GetFlag(FLAGS_max_concurrent_streams));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "raw_stream_server: cannot listen\n");
    return 1;
  }
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    const std::string tmp = path + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), path.c_str());
  }
  std::fprintf(stderr, "raw_stream_server listening on port %d\n", port);
  // Serve until SIGTERM or SIGINT (blocked here, taken by sigwait).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  int sig = 0;
  sigwait(&signals, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  // Block the stop signals before gRPC starts its threads, so that only
  // sigwait in Run receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  absl::ParseCommandLine(argc, argv);
  return sluice::Run();
}
