#include "tests/test_server.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "models/charlm/charlm.h"
#include "models/echo.h"
#include "models/model_testing.h"

namespace sluice::testing {

ServerOptions TestServer::DefaultOptions() {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.model_defaults = ExecutorOptions{2, 64, 64};
  options.shutdown_grace = absl::Seconds(5);
  return options;
}

TestServer::TestServer(ServerOptions options) {
  ModelRegistry registry;
  auto synthetic = std::make_unique<SyntheticModel>();
  synthetic_ = synthetic.get();
  EXPECT_TRUE(registry.Register("synthetic", std::move(synthetic)).ok());
  auto batched = std::make_unique<BatchedSyntheticModel>();
  batched_ = batched.get();
  EXPECT_TRUE(registry.Register("batched_synthetic", std::move(batched)).ok());
  EXPECT_TRUE(registry.Register("echo", std::make_unique<EchoModel>()).ok());
  EXPECT_TRUE(
      registry
          .Register("charlm", std::make_unique<CharLmModel>(std::string(DefaultCharLmCorpus()), 5))
          .ok());
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options, std::move(registry));
  if (!server.ok()) {
    ADD_FAILURE() << "server did not start: " << server.status();
    return;
  }
  server_ = *std::move(server);
  target_ = server_->target();
  client_ = std::make_unique<SluiceClient>(NewChannel());
}

TestServer::~TestServer() {
  client_.reset();
  if (server_ != nullptr) {
    EXPECT_TRUE(server_->Shutdown(absl::Seconds(5)));
  }
}

std::shared_ptr<grpc::Channel> TestServer::NewChannel() const {
  static std::atomic<int> next_id{0};
  grpc::ChannelArguments args;
  // A distinct argument keeps gRPC from sharing one connection between channels.
  args.SetInt("sluice.test_channel_id", next_id++);
  return grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), args);
}

v1::PredictRequest Synthetic(std::vector<std::pair<std::string, int64_t>> params,
                             std::string request_id, std::string model) {
  std::vector<std::pair<std::string, v1::Parameter>> typed;
  for (auto& [name, value] : params) typed.emplace_back(name, IntParam(value));
  v1::PredictRequest request = MakeRequest(std::move(model), "", std::move(typed));
  request.set_request_id(std::move(request_id));
  return request;
}

v1::PredictRequest BatchedSynthetic(std::vector<std::pair<std::string, int64_t>> params,
                                    std::string request_id) {
  return Synthetic(std::move(params), std::move(request_id), "batched_synthetic");
}

OpenStream::OpenStream(v1::Inference::Stub& stub, const v1::PredictRequest& request,
                       absl::Duration deadline) {
  if (deadline != absl::InfiniteDuration()) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  }
  reader_ = stub.PredictStream(&context_, request);
}

bool OpenStream::ReadChunks(int n) {
  v1::PredictChunk chunk;
  for (int i = 0; i < n; ++i) {
    if (!reader_->Read(&chunk)) return false;
    chunks_.push_back(chunk);
  }
  return true;
}

grpc::Status OpenStream::Finish() {
  v1::PredictChunk chunk;
  while (reader_->Read(&chunk)) chunks_.push_back(chunk);
  return reader_->Finish();
}

grpc::Status StreamAndCancelAfter(v1::Inference::Stub& stub, const v1::PredictRequest& request,
                                  int n) {
  OpenStream stream(stub, request);
  EXPECT_TRUE(stream.ReadChunks(n));
  stream.Cancel();
  return stream.Finish();
}

}  // namespace sluice::testing
