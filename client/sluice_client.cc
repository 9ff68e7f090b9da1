#include "client/sluice_client.h"

#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "models/sync.h"
#include "service/auth.h"
#include "service/status.h"
#include "service/tls.h"

namespace sluice {

SluiceClient::SluiceClient(std::shared_ptr<grpc::Channel> channel, std::string auth_token)
    : channel_(std::move(channel)),
      stub_(v1::Inference::NewStub(channel_)),
      authorization_(auth_token.empty() ? "" : "Bearer " + auth_token) {}

std::unique_ptr<SluiceClient> SluiceClient::Connect(const std::string& target) {
  return std::make_unique<SluiceClient>(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> SluiceClient::MakeChannel(
    const std::string& target, const ConnectOptions& options, grpc::ChannelArguments args) {
  const bool tls = options.tls || !options.tls_ca_file.empty() || !options.tls_cert_file.empty() ||
                   !options.tls_key_file.empty() || !options.tls_server_name.empty();
  if (!tls) return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ClientTlsCredentials({options.tls_ca_file, options.tls_cert_file, options.tls_key_file});
  if (!credentials.ok()) return credentials.status();
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  return grpc::CreateCustomChannel(target, *credentials, args);
}

absl::StatusOr<std::unique_ptr<SluiceClient>> SluiceClient::Connect(const std::string& target,
                                                                    const ConnectOptions& options) {
  if (absl::Status status = BearerAuth::CheckTokenCharacters(options.auth_token); !status.ok()) {
    return status;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(target, options);
  if (!channel.ok()) return channel.status();
  return std::make_unique<SluiceClient>(*std::move(channel), options.auth_token);
}

void SluiceClient::PrepareContext(grpc::ClientContext* context) const {
  if (!authorization_.empty()) context->AddMetadata("authorization", authorization_);
}

StreamResult SluiceClient::PredictStream(
    const v1::PredictRequest& request, const StreamOptions& options,
    const std::function<void(const v1::PredictChunk&)>& on_chunk) {
  StreamResult result;
  grpc::ClientContext context;
  PrepareContext(&context);
  const absl::Time start = absl::Now();
  if (options.deadline != absl::InfiniteDuration()) {
    context.set_deadline(absl::ToChronoTime(start + options.deadline));
  }
  // A timed cancel runs on its own thread; `done` stops it early.
  Notification done;
  std::thread canceller;
  std::atomic<bool> timed_cancel{false};
  if (options.cancel_after != absl::InfiniteDuration()) {
    canceller = std::thread([&] {
      if (!done.WaitForNotificationWithTimeout(options.cancel_after)) {
        timed_cancel = true;
        context.TryCancel();
      }
    });
  }
  std::unique_ptr<grpc::ClientReader<v1::PredictChunk>> reader =
      stub_->PredictStream(&context, request);
  v1::PredictChunk chunk;
  while (reader->Read(&chunk)) {
    if (chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      result.finish_reason = chunk.finish_reason();
      result.usage = chunk.usage();
      continue;
    }
    if (result.chunks == 0) result.time_to_first_chunk = absl::Now() - start;
    ++result.chunks;
    result.output += chunk.output();
    if (on_chunk) on_chunk(chunk);
    if (options.cancel_after_chunks >= 0 && result.chunks >= options.cancel_after_chunks) {
      result.cancelled_by_client = true;
      context.TryCancel();
      break;
    }
  }
  result.status = reader->Finish();
  result.elapsed = absl::Now() - start;
  done.Notify();
  if (canceller.joinable()) canceller.join();
  if (timed_cancel) result.cancelled_by_client = true;
  return result;
}

absl::StatusOr<v1::PredictResponse> SluiceClient::Predict(const v1::PredictRequest& request,
                                                          absl::Duration deadline) {
  grpc::ClientContext context;
  PrepareContext(&context);
  if (deadline != absl::InfiniteDuration()) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  }
  v1::PredictResponse response;
  grpc::Status status = stub_->Predict(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::ListModelsResponse> SluiceClient::ListModels() {
  grpc::ClientContext context;
  PrepareContext(&context);
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::ListModelsResponse response;
  grpc::Status status = stub_->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<std::pair<std::string, v1::Parameter>> ParseParameter(absl::string_view text) {
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter \"", text, "\" must look like name=value or name:type=value"));
  }
  absl::string_view name = text.substr(0, eq);
  const absl::string_view value = text.substr(eq + 1);
  absl::string_view type;
  if (const size_t colon = name.find(':'); colon != absl::string_view::npos) {
    type = name.substr(colon + 1);
    name = name.substr(0, colon);
  }
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter \"", text, "\" has no name before its type"));
  }
  v1::Parameter param;
  int64_t i;
  double d;
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", name, ": \"", value, "\" is not ", what));
  };
  if (type.empty()) {
    if (value == "true" || value == "false") {
      param.set_bool_param(value == "true");
    } else if (absl::SimpleAtoi(value, &i)) {
      param.set_int64_param(i);
    } else if (absl::SimpleAtod(value, &d)) {
      param.set_double_param(d);
    } else {
      param.set_string_param(std::string(value));
    }
  } else if (type == "int" || type == "int64") {
    if (!absl::SimpleAtoi(value, &i)) return bad("an integer");
    param.set_int64_param(i);
  } else if (type == "double" || type == "float") {
    if (!absl::SimpleAtod(value, &d)) return bad("a number");
    param.set_double_param(d);
  } else if (type == "bool") {
    if (value != "true" && value != "false") return bad("true or false");
    param.set_bool_param(value == "true");
  } else if (type == "string" || type == "str") {
    param.set_string_param(std::string(value));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("parameter ", name, ": unknown type \"", type,
                                                   "\"; use int, double, bool or string"));
  }
  return std::make_pair(std::string(name), std::move(param));
}

std::vector<std::string> TakeRepeatedFlag(int* argc, char** argv, absl::string_view name) {
  std::vector<std::string> values;
  const std::string with_value = absl::StrCat("--", name, "=");
  const std::string bare = absl::StrCat("--", name);
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    const absl::string_view arg = argv[i];
    if (absl::StartsWith(arg, with_value)) {
      values.emplace_back(arg.substr(with_value.size()));
    } else if (arg == bare && i + 1 < *argc) {
      values.emplace_back(argv[++i]);
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  return values;
}

}  // namespace sluice
