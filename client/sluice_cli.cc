// sluice_cli: call a sluice server from the command line.
//
//   sluice_cli --model=charlm --input="The river" --param max_tokens=200 --stream
//   sluice_cli --model=synthetic --param tokens=3000 --param token_cost_us=1000
//              --stream --cancel_after_chunks=10
//   sluice_cli --list_models
//   sluice_cli --target=host:50051 --tls_ca=ca.pem --auth_token_file=token --list_models
//
// Chunks go to stdout as they arrive; the final status and timing go to
// stderr. The exit code is 0 only if the call ended OK.

#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/sluice_client.h"
#include "grpcpp/client_context.h"
#include "models/sync.h"
#include "service/auth.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "Server address, host:port.");
ABSL_FLAG(bool, tls, false,
          "Connect with TLS, trusting the system's CAs (implied by the other --tls_* flags).");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA certificate(s) to trust for the server (TLS).");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate, for servers requiring mutual TLS.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name to verify the server's certificate against, instead of --target's host.");
ABSL_FLAG(std::string, auth_token_file, "",
          "File holding the server's bearer token; without it, $SLUICE_AUTH_TOKEN if set.");
ABSL_FLAG(std::string, model, "", "Model to call (see --list_models).");
ABSL_FLAG(std::string, input, "", "The model's input, e.g. a prompt.");
ABSL_FLAG(std::vector<std::string>, param, {},
          "A model parameter name=value; repeat the flag for more. The type is inferred "
          "(true/false, integer, number, else string) or given as name:int=5, "
          "name:double=0.7, name:bool=true, name:string=text.");
ABSL_FLAG(std::string, request_id, "", "Request id, echoed by the server and in its logs.");
ABSL_FLAG(bool, stream, false,
          "Call PredictStream and print chunks as they arrive "
          "(default: the unary Predict).");
ABSL_FLAG(int64_t, deadline_ms, 0, "Deadline for the call in milliseconds; 0 for none.");
ABSL_FLAG(int64_t, cancel_after_chunks, -1,
          "With --stream: cancel the call after receiving this many chunks.");
ABSL_FLAG(int64_t, cancel_after_ms, -1, "Cancel the call this many milliseconds after it starts.");
ABSL_FLAG(bool, list_models, false, "List the server's models and their parameters, then exit.");
ABSL_FLAG(bool, quiet, false, "Do not print the output, only the final status line.");

namespace {

std::string FinishReasonName(sluice::v1::FinishReason reason) {
  return sluice::v1::FinishReason_Name(reason);
}

std::string CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i <= 16 ? kNames[i] : absl::StrCat(i);
}

int ListModels(sluice::SluiceClient& client) {
  absl::StatusOr<sluice::v1::ListModelsResponse> models = client.ListModels();
  if (!models.ok()) {
    std::cerr << "ListModels failed: " << models.status() << "\n";
    return 1;
  }
  for (const sluice::v1::ModelInfo& m : models->models()) {
    std::cout << m.name() << ": " << m.description() << "\n"
              << "  workers=" << m.workers() << " max_active=" << m.max_active()
              << " queue_capacity=" << m.queue_capacity() << "\n";
    for (const sluice::v1::ParameterInfo& p : m.parameters()) {
      std::cout << "  --param " << p.name() << "=<" << p.type() << ">  " << p.description() << "\n";
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // --param is meant to be repeated; see TakeRepeatedFlag.
  std::vector<std::string> params = sluice::TakeRepeatedFlag(&argc, argv, "param");
  absl::SetProgramUsageMessage(
      "Calls a sluice server. Chunks go to stdout; the final status and timing to stderr.\n"
      "Exit code 0 only if the call ended OK.\n"
      "  sluice_cli --model=charlm --input='The river' --param max_tokens=200 --stream");
  absl::ParseCommandLine(argc, argv);
  for (const std::string& p : absl::GetFlag(FLAGS_param)) params.push_back(p);

  sluice::ConnectOptions connect;
  connect.tls = absl::GetFlag(FLAGS_tls);
  connect.tls_ca_file = absl::GetFlag(FLAGS_tls_ca);
  connect.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  connect.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  connect.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  absl::StatusOr<std::string> token = sluice::LoadAuthToken(absl::GetFlag(FLAGS_auth_token_file));
  if (!token.ok()) {
    std::cerr << token.status().message() << "\n";
    return 2;
  }
  connect.auth_token = *std::move(token);
  absl::StatusOr<std::unique_ptr<sluice::SluiceClient>> connected =
      sluice::SluiceClient::Connect(absl::GetFlag(FLAGS_target), connect);
  if (!connected.ok()) {
    std::cerr << connected.status().message() << "\n";
    return 2;
  }
  std::unique_ptr<sluice::SluiceClient> client = *std::move(connected);
  if (absl::GetFlag(FLAGS_list_models)) return ListModels(*client);

  sluice::v1::PredictRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_input(absl::GetFlag(FLAGS_input));
  request.set_request_id(absl::GetFlag(FLAGS_request_id));
  for (const std::string& text : params) {
    auto param = sluice::ParseParameter(text);
    if (!param.ok()) {
      std::cerr << param.status().message() << "\n";
      return 2;
    }
    (*request.mutable_parameters())[param->first] = std::move(param->second);
  }
  if (request.model().empty()) {
    std::cerr << "--model is required (see --list_models)\n";
    return 2;
  }

  const bool quiet = absl::GetFlag(FLAGS_quiet);
  sluice::StreamOptions options;
  if (absl::GetFlag(FLAGS_deadline_ms) > 0) {
    options.deadline = absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  }
  options.cancel_after_chunks = absl::GetFlag(FLAGS_cancel_after_chunks);
  if (absl::GetFlag(FLAGS_cancel_after_ms) >= 0) {
    options.cancel_after = absl::Milliseconds(absl::GetFlag(FLAGS_cancel_after_ms));
  }

  if (!absl::GetFlag(FLAGS_stream)) {
    if (options.cancel_after_chunks >= 0) {
      std::cerr << "--cancel_after_chunks needs --stream\n";
      return 2;
    }
    // The unary call, made through the stream helper's options for deadline
    // and timed cancel.
    grpc::ClientContext context;
    client->PrepareContext(&context);
    const absl::Time start = absl::Now();
    if (options.deadline != absl::InfiniteDuration()) {
      context.set_deadline(absl::ToChronoTime(start + options.deadline));
    }
    sluice::v1::PredictResponse response;
    std::unique_ptr<std::thread> canceller;
    sluice::Notification done;
    if (options.cancel_after != absl::InfiniteDuration()) {
      canceller = std::make_unique<std::thread>([&] {
        if (!done.WaitForNotificationWithTimeout(options.cancel_after)) context.TryCancel();
      });
    }
    grpc::Status status = client->stub().Predict(&context, request, &response);
    done.Notify();
    if (canceller) canceller->join();
    const absl::Duration elapsed = absl::Now() - start;
    if (status.ok() && !quiet) std::cout << response.output() << std::flush;
    std::cerr << (status.ok() && !quiet ? "\n" : "") << "status=" << CodeName(status.error_code())
              << (status.ok() ? "" : " message=\"" + status.error_message() + "\"");
    if (status.ok()) {
      std::cerr << " finish_reason=" << FinishReasonName(response.finish_reason())
                << " chunks=" << response.usage().output_chunks();
    }
    std::cerr << absl::StrFormat(" total_ms=%.1f\n", absl::ToDoubleMilliseconds(elapsed));
    return status.ok() ? 0 : 1;
  }

  sluice::StreamResult result =
      client->PredictStream(request, options, [quiet](const sluice::v1::PredictChunk& chunk) {
        if (!quiet) std::cout << chunk.output() << std::flush;
      });
  if (!quiet && result.chunks > 0) std::cout << std::endl;
  std::cerr << "status=" << CodeName(result.status.error_code());
  if (!result.status.ok()) std::cerr << " message=\"" << result.status.error_message() << "\"";
  if (result.cancelled_by_client) std::cerr << " cancelled_by=client";
  if (result.finish_reason != sluice::v1::FINISH_REASON_UNSPECIFIED) {
    std::cerr << " finish_reason=" << FinishReasonName(result.finish_reason);
  }
  std::cerr << " chunks=" << result.chunks;
  if (result.time_to_first_chunk != absl::InfiniteDuration()) {
    std::cerr << absl::StrFormat(" first_chunk_ms=%.1f",
                                 absl::ToDoubleMilliseconds(result.time_to_first_chunk));
  }
  std::cerr << absl::StrFormat(" total_ms=%.1f\n", absl::ToDoubleMilliseconds(result.elapsed));
  return result.status.ok() ? 0 : 1;
}
