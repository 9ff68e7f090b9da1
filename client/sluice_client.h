#ifndef SLUICE_CLIENT_SLUICE_CLIENT_H_
#define SLUICE_CLIENT_SLUICE_CLIENT_H_

// A small C++ client for sluice.v1.Inference.
//
//   auto client = sluice::SluiceClient::Connect("127.0.0.1:50051");
//   // or, to a server with TLS and a token:
//   sluice::ConnectOptions options;
//   options.tls_ca_file = "ca.pem";
//   options.auth_token = "...";
//   absl::StatusOr<std::unique_ptr<sluice::SluiceClient>> client =
//       sluice::SluiceClient::Connect("sluice.example:50051", options);
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
#include "grpcpp/client_context.h"
#include "grpcpp/support/channel_arguments.h"
#include "sluice/v1/inference.grpc.pb.h"

namespace sluice {

// ConnectOptions: how a client reaches a server and proves who it is.
struct ConnectOptions {
  // TLS: used when `tls` is set or any tls_* file is given; plaintext
  // otherwise. tls_ca_file: PEM CAs to trust for the server's certificate
  // (empty: the system's roots).
  bool tls = false;
  std::string tls_ca_file;
  // Mutual TLS: the client's PEM certificate chain and key (both or neither).
  std::string tls_cert_file;
  std::string tls_key_file;
  // The name to verify the server's certificate against, instead of the
  // target's host (e.g. "localhost" when dialing an address).
  std::string tls_server_name;
  // Sent with every call as "authorization: Bearer <token>"; empty: none.
  // Without TLS it crosses the network in clear text.
  std::string auth_token;
};

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
  int64_t chunks = 0;  // output chunks received
  std::string output;  // all output, concatenated
  v1::FinishReason finish_reason = v1::FINISH_REASON_UNSPECIFIED;
  v1::Usage usage;                   // from the final message, if one came
  bool cancelled_by_client = false;  // we cancelled it (cancel_after_*)
  absl::Duration time_to_first_chunk = absl::InfiniteDuration();
  absl::Duration elapsed;
};

// SluiceClient: blocking calls on one channel. Thread-safe.
class SluiceClient {
 public:
  // `auth_token`, if set, is sent with every call (see ConnectOptions).
  explicit SluiceClient(std::shared_ptr<grpc::Channel> channel, std::string auth_token = "");

  // Connect: a plaintext channel to `target` ("host:port").
  static std::unique_ptr<SluiceClient> Connect(const std::string& target);
  // Connect: a channel to `target` as `options` say. Fails if a TLS file
  // cannot be read or the token is not a valid metadata value.
  static absl::StatusOr<std::unique_ptr<SluiceClient>> Connect(const std::string& target,
                                                               const ConnectOptions& options);
  // MakeChannel: the channel Connect would use, with `args` added.
  static absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
      const std::string& target, const ConnectOptions& options,
      grpc::ChannelArguments args = grpc::ChannelArguments());

  // PrepareContext: adds to `context` what every call of this client
  // carries (its bearer token). The calls below do it themselves; use it for
  // calls made on stub() directly.
  void PrepareContext(grpc::ClientContext* context) const;

  // PredictStream: streams `request`, calling `on_chunk` for each output chunk
  // as it arrives (on this thread), and returns when the call has ended.
  StreamResult PredictStream(const v1::PredictRequest& request, const StreamOptions& options,
                             const std::function<void(const v1::PredictChunk&)>& on_chunk = {});

  // Predict: the unary call. `deadline` relative; infinite for none.
  absl::StatusOr<v1::PredictResponse> Predict(const v1::PredictRequest& request,
                                              absl::Duration deadline = absl::InfiniteDuration());

  absl::StatusOr<v1::ListModelsResponse> ListModels();

  v1::Inference::Stub& stub() { return *stub_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> stub_;
  const std::string authorization_;  // "Bearer <token>", or "" for none
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
