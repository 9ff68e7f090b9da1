#include "models/model_testing.h"

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace sluice::testing {

v1::Parameter IntParam(int64_t v) {
  v1::Parameter p;
  p.set_int64_param(v);
  return p;
}
v1::Parameter DoubleParam(double v) {
  v1::Parameter p;
  p.set_double_param(v);
  return p;
}
v1::Parameter BoolParam(bool v) {
  v1::Parameter p;
  p.set_bool_param(v);
  return p;
}
v1::Parameter StringParam(std::string v) {
  v1::Parameter p;
  p.set_string_param(std::move(v));
  return p;
}

v1::PredictRequest MakeRequest(std::string model, std::string input,
                               std::vector<std::pair<std::string, v1::Parameter>> params) {
  v1::PredictRequest request;
  request.set_model(std::move(model));
  request.set_input(std::move(input));
  for (auto& [name, value] : params) (*request.mutable_parameters())[name] = std::move(value);
  return request;
}

std::string ModelRun::Joined() const { return absl::StrJoin(chunks, ""); }

absl::StatusOr<ModelRun> RunModel(GeneratorModelBase& model, const v1::PredictRequest& request,
                                  const CancellationToken& cancel, int max_steps) {
  absl::StatusOr<std::unique_ptr<PreparedCall>> prepared = model.Prepare(request.model(), request);
  if (!prepared.ok()) return prepared.status();
  absl::StatusOr<std::unique_ptr<EncodedGenerator>> generator = (*prepared)->Start(cancel);
  if (!generator.ok()) return generator.status();
  ModelRun run;
  for (int i = 0; i < max_steps; ++i) {
    Step<std::string> step = (*generator)->Next();
    switch (step.kind()) {
      case Step<std::string>::Kind::kChunk:
        run.chunks.push_back(std::move(step.chunk()));
        break;
      case Step<std::string>::Kind::kDone:
        run.finish_reason = step.finish_reason();
        return run;
      case Step<std::string>::Kind::kWait:
        absl::SleepFor(step.wait_until() - absl::Now());  // pacing, as a worker would
        break;
      case Step<std::string>::Kind::kError:
        return step.status();
    }
  }
  return absl::DeadlineExceededError("RunModel: generator did not finish within max_steps");
}

}  // namespace sluice::testing
