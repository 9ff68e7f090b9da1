#ifndef SLUICE_TESTS_TEST_SERVER_H_
#define SLUICE_TESTS_TEST_SERVER_H_

// An in-process sluice server on a free loopback port, for end-to-end tests.

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/sluice_client.h"
#include "models/batched_synthetic.h"
#include "models/synthetic.h"
#include "service/server.h"
#include "sluice/v1/inference.grpc.pb.h"

namespace sluice::testing {

class TestServer {
 public:
  // Starts a server with "synthetic", "batched_synthetic", "echo" and
  // "charlm" on 127.0.0.1:0.
  explicit TestServer(ServerOptions options = DefaultOptions());
  ~TestServer();

  static ServerOptions DefaultOptions();

  Server& server() { return *server_; }
  const std::string& target() const { return target_; }
  // synthetic: the model instance the server runs, with its counters.
  SyntheticModel& synthetic() { return *synthetic_; }
  // batched: the batched_synthetic model instance, with its counters.
  BatchedSyntheticModel& batched() { return *batched_; }
  const ModelStats& stats(const std::string& model = "synthetic") const {
    return *server_->stats(model);
  }
  // client: a client on a channel of its own, kept for the server's lifetime.
  SluiceClient& client() { return *client_; }
  // NewChannel: a channel that is not shared with any other (its own TCP
  // connection).
  std::shared_ptr<grpc::Channel> NewChannel() const;

 private:
  SyntheticModel* synthetic_ = nullptr;  // owned by the server's registry
  BatchedSyntheticModel* batched_ = nullptr;
  std::unique_ptr<Server> server_;
  std::string target_;
  std::unique_ptr<SluiceClient> client_;
};

// Synthetic: a PredictRequest for the synthetic model (or `model`).
v1::PredictRequest Synthetic(std::vector<std::pair<std::string, int64_t>> params,
                             std::string request_id = "", std::string model = "synthetic");
// BatchedSynthetic: a PredictRequest for the batched_synthetic model.
v1::PredictRequest BatchedSynthetic(std::vector<std::pair<std::string, int64_t>> params,
                                    std::string request_id = "");

// OpenStream: a PredictStream call the test drives chunk by chunk.
class OpenStream {
 public:
  OpenStream(v1::Inference::Stub& stub, const v1::PredictRequest& request,
             absl::Duration deadline = absl::InfiniteDuration());
  // ReadChunks: reads `n` output chunks; false if the stream ended first.
  bool ReadChunks(int n);
  // Cancel: cancels the call from the client side (RST_STREAM).
  void Cancel() { context_.TryCancel(); }
  // Finish: drains the stream and returns its status.
  grpc::Status Finish();
  const std::vector<v1::PredictChunk>& chunks() const { return chunks_; }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::PredictChunk>> reader_;
  std::vector<v1::PredictChunk> chunks_;
};

// StreamAndCancelAfter: opens a stream, reads `n` chunks (a test failure if it
// cannot), cancels it from the client (keeping the connection up), and
// returns the status.
grpc::Status StreamAndCancelAfter(v1::Inference::Stub& stub, const v1::PredictRequest& request,
                                  int n);

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_TEST_SERVER_H_
