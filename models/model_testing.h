#ifndef SLUICE_MODELS_MODEL_TESTING_H_
#define SLUICE_MODELS_MODEL_TESTING_H_

// Helpers for testing a model on its own, without a server.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "models/model.h"

namespace sluice::testing {

v1::Parameter IntParam(int64_t v);
v1::Parameter DoubleParam(double v);
v1::Parameter BoolParam(bool v);
v1::Parameter StringParam(std::string v);

// MakeRequest: a PredictRequest for `model` with `input` and `params`.
v1::PredictRequest MakeRequest(std::string model, std::string input,
                               std::vector<std::pair<std::string, v1::Parameter>> params = {});

struct ModelRun {
  std::vector<std::string> chunks;  // encoded chunks, in order
  FinishReason finish_reason = FinishReason::kStop;
  std::string Joined() const;
};

// RunModel: prepares `request` on `model` and drains its generator the way a
// single worker would (honouring WaitUntil by waiting), at most `max_steps`.
absl::StatusOr<ModelRun> RunModel(GeneratorModelBase& model, const v1::PredictRequest& request,
                                  const CancellationToken& cancel = CancellationToken(),
                                  int max_steps = 1'000'000);

}  // namespace sluice::testing

#endif  // SLUICE_MODELS_MODEL_TESTING_H_
