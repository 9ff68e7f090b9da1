#ifndef SLUICE_MODELS_MODEL_H_
#define SLUICE_MODELS_MODEL_H_

// The model API: what a user implements to serve a model with sluice.
//
// It has the shape of LitServe's LitAPI: set up once, decode a request into
// the model's input, predict as a generator of chunks, encode each chunk.
//
//   class Shout : public sluice::Model<std::string, char> {
//    public:
//     absl::StatusOr<std::string> Decode(const sluice::Request& r) const override {
//       return std::string(r.input());
//     }
//     absl::StatusOr<std::unique_ptr<sluice::Generator<char>>> Predict(
//         std::string text, const sluice::CancellationToken&) override {
//       return sluice::MakeGenerator<char>([text, i = size_t{0}]() mutable {
//         if (i == text.size()) return sluice::Step<char>::Done();
//         return sluice::Step<char>::Chunk(absl::ascii_toupper(text[i++]));
//       });
//     }
//     absl::StatusOr<std::string> Encode(char c) const override { return std::string(1, c); }
//   };
//
// Everything else (queueing, workers, streaming, cancellation, deadlines,
// metrics) is the framework's business; see service/server.h to serve it.

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/cancellation.h"
#include "models/generator.h"
#include "models/parameters.h"
#include "sluice/v1/inference.pb.h"

namespace sluice {

// Request: one client request as Decode sees it, parameters already validated
// against the model's schema (defaults filled in).
class Request {
 public:
  Request(const v1::PredictRequest& proto, const ParameterValues& params)
      : proto_(proto), params_(params) {}

  absl::string_view input() const { return proto_.input(); }
  const ParameterValues& params() const { return params_; }
  absl::string_view request_id() const { return proto_.request_id(); }
  // proto: the request as received, for anything the accessors do not cover.
  const v1::PredictRequest& proto() const { return proto_; }

 private:
  const v1::PredictRequest& proto_;
  const ParameterValues& params_;
};

// EncodedGenerator: a generator whose chunks are already encoded for the wire.
using EncodedGenerator = Generator<std::string>;

// PreparedCall: a decoded request, ready to start. Created on a gRPC thread
// before queueing; Start runs on a worker thread once the call gets its turn.
class PreparedCall {
 public:
  virtual ~PreparedCall() = default;
  // Start: runs the model's Predict. Called at most once.
  virtual absl::StatusOr<std::unique_ptr<EncodedGenerator>> Start(
      const CancellationToken& cancel) = 0;
};

// ModelBase: what every model has, whichever of the two kinds it is: a
// generator model (Model<Input, Output> below: one generator per call, run
// on the model's worker threads) or a batched model (BatchedModel in
// models/batched_model.h: many calls share each model step). Users derive
// from one of those two templates, not from this class.
class ModelBase {
 public:
  virtual ~ModelBase() = default;

  // description: one line about what the model does, shown by ListModels.
  virtual std::string description() const { return ""; }

  // parameters: the parameters the model accepts. Requests are validated
  // against it before Decode; a parameter not declared here is rejected.
  virtual const ParameterSchema& parameters() const {
    static const ParameterSchema* const kNone = new ParameterSchema();
    return *kNone;
  }

  // Setup: called once, before the model serves its first request, on the
  // thread that starts the server. A non-OK status stops the server starting.
  virtual absl::Status Setup() { return absl::OkStatus(); }
};

// GeneratorModelBase: the type-erased generator model the framework drives
// (implemented by Model<Input, Output>).
class GeneratorModelBase : public ModelBase {
 public:
  // Prepare: validates and decodes a request.
  virtual absl::StatusOr<std::unique_ptr<PreparedCall>> Prepare(
      absl::string_view model_name, const v1::PredictRequest& request) = 0;
};

// Model<Input, Output>: the interface a user implements.
//
// Threading: Decode and Encode may run concurrently on any threads and must
// be thread-safe. Predict runs on the model's worker threads, concurrently
// for different calls (as many as the model's max_active option allows).
template <typename Input, typename Output>
class Model : public GeneratorModelBase {
 public:
  // Decode: turns a request into the model's input. Runs on a gRPC thread
  // before the request is queued, so it must be cheap. Return
  // INVALID_ARGUMENT with a precise message for input the model cannot take;
  // the client gets it and the request never queues.
  virtual absl::StatusOr<Input> Decode(const Request& request) const = 0;

  // Predict: starts generating for one call; the generator yields the chunks.
  // `cancel` stays valid for the generator's lifetime: a long step polls it.
  virtual absl::StatusOr<std::unique_ptr<Generator<Output>>> Predict(
      Input input, const CancellationToken& cancel) = 0;

  // Encode: turns one chunk into the bytes sent as PredictChunk.output.
  // Runs on the worker thread right after the chunk is produced.
  virtual absl::StatusOr<std::string> Encode(Output chunk) const = 0;

  absl::StatusOr<std::unique_ptr<PreparedCall>> Prepare(absl::string_view model_name,
                                                        const v1::PredictRequest& request) final;

 private:
  class Prepared;
  class Encoding;
};

// ---------------------------------------------------------------------------
// Implementation details.

template <typename Input, typename Output>
class Model<Input, Output>::Encoding final : public EncodedGenerator {
 public:
  Encoding(const Model* model, std::unique_ptr<Generator<Output>> inner)
      : model_(model), inner_(std::move(inner)) {}

  Step<std::string> Next() override {
    Step<Output> step = inner_->Next();
    switch (step.kind()) {
      case Step<Output>::Kind::kChunk: {
        absl::StatusOr<std::string> bytes = model_->Encode(std::move(step.chunk()));
        if (!bytes.ok()) return Step<std::string>::Error(bytes.status());
        return Step<std::string>::Chunk(*std::move(bytes));
      }
      case Step<Output>::Kind::kDone:
        return Step<std::string>::Done(step.finish_reason());
      case Step<Output>::Kind::kWait:
        return Step<std::string>::WaitUntil(step.wait_until());
      case Step<Output>::Kind::kError:
        break;
    }
    return Step<std::string>::Error(step.status());
  }

 private:
  const Model* const model_;
  std::unique_ptr<Generator<Output>> inner_;
};

template <typename Input, typename Output>
class Model<Input, Output>::Prepared final : public PreparedCall {
 public:
  Prepared(Model* model, Input input) : model_(model), input_(std::move(input)) {}

  absl::StatusOr<std::unique_ptr<EncodedGenerator>> Start(
      const CancellationToken& cancel) override {
    absl::StatusOr<std::unique_ptr<Generator<Output>>> inner =
        model_->Predict(std::move(input_), cancel);
    if (!inner.ok()) return inner.status();
    if (*inner == nullptr) return absl::InternalError("Predict returned a null generator");
    return std::unique_ptr<EncodedGenerator>(std::make_unique<Encoding>(model_, *std::move(inner)));
  }

 private:
  Model* const model_;
  Input input_;
};

template <typename Input, typename Output>
absl::StatusOr<std::unique_ptr<PreparedCall>> Model<Input, Output>::Prepare(
    absl::string_view model_name, const v1::PredictRequest& request) {
  absl::StatusOr<ParameterValues> params = parameters().Parse(model_name, request.parameters());
  if (!params.ok()) return params.status();
  absl::StatusOr<Input> input = Decode(Request(request, *params));
  if (!input.ok()) return input.status();
  // The prepared call keeps a pointer to the model: calls never outlive the
  // server, and the server never outlives its models.
  return std::unique_ptr<PreparedCall>(std::make_unique<Prepared>(this, *std::move(input)));
}

}  // namespace sluice

#endif  // SLUICE_MODELS_MODEL_H_
