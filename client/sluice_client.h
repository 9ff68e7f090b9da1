#ifndef SLUICE_CLIENT_SLUICE_CLIENT_H_
#define SLUICE_CLIENT_SLUICE_CLIENT_H_

// A small C++ client for sluice.v1.Inference.
//
//   auto client = sluice::SluiceClient::Connect("127.0.0.1:50051");
//   v1::PredictRequest request = ...;
//   sluice::StreamResult result = client->PredictStream(
//       request, {}, [](const v1::PredictChunk& c) { std::cout << c.output(); });

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "sluice/v1/inference.grpc.pb.h"

namespace sluice {

// StreamOptions: how a PredictStream call is made and when the client gives up.
struct StreamOptions {
  // The call's deadline, relative to its start; infinite for none.
  absl::Duration deadline = absl::InfiniteDuration();
  // Cancel the call after receiving this many output chunks; -1 never.
  int64_t cancel_after_chunks = -1;
  // Cancel the call this long after it started; infinite never.
  absl::Duration cancel_after = absl::InfiniteDuration();
};

// StreamResult: how a PredictStream call went.
struct StreamResult {
  grpc::Status status;
  int64_t chunks = 0;                    // output chunks received
  std::string output;                    // all output, concatenated
  v1::FinishReason finish_reason = v1::FINISH_REASON_UNSPECIFIED;
  v1::Usage usage;                       // from the final message, if one came
  bool cancelled_by_client = false;      // we cancelled it (cancel_after_*)
  absl::Duration time_to_first_chunk = absl::InfiniteDuration();
  absl::Duration elapsed;
};

// SluiceClient: blocking calls on one channel. Thread-safe.
class SluiceClient {
 public:
  explicit SluiceClient(std::shared_ptr<grpc::Channel> channel);

  // Connect: an insecure channel to `target` ("host:port").
  static std::unique_ptr<SluiceClient> Connect(const std::string& target);

  // PredictStream: streams `request`, calling `on_chunk` for each output chunk
  // as it arrives (on this thread), and returns when the call has ended.
  StreamResult PredictStream(const v1::PredictRequest& request, const StreamOptions& options,
                             const std::function<void(const v1::PredictChunk&)>& on_chunk = {});

  // Predict: the unary call. `deadline` relative; infinite for none.
  absl::StatusOr<v1::PredictResponse> Predict(
      const v1::PredictRequest& request, absl::Duration deadline = absl::InfiniteDuration());

  absl::StatusOr<v1::ListModelsResponse> ListModels();

  v1::Inference::Stub& stub() { return *stub_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

// ParseParameter: "name=value" as a request parameter. The type is inferred
// (true/false → bool, integer → int64, number → double, else string) unless
// given: "name:int=5", "name:double=1", "name:bool=true", "name:string=5".
absl::StatusOr<std::pair<std::string, v1::Parameter>> ParseParameter(absl::string_view text);

// TakeRepeatedFlag: removes every "--name=value" and "--name value" from
// argv and returns the values in order. Abseil keeps only the last value of a
// repeated flag; call this before absl::ParseCommandLine for flags meant to
// be repeated (like --param).
std::vector<std::string> TakeRepeatedFlag(int* argc, char** argv, absl::string_view name);

}  // namespace sluice

#endif  // SLUICE_CLIENT_SLUICE_CLIENT_H_
