// An example of a user's own batched model: its calls share each model step.
// Build and run:
//
//   bazel run //examples:countdown_server -- --port=50053
//   bazel-bin/client/sluice_cli --target=127.0.0.1:50053 --model=countdown
//       --param from=5 --stream
//
// A batched model has the same Decode and Encode as a generator model; in
// place of Predict it starts a sequence (its state is the model's own), steps
// a whole batch at once, and releases each sequence when it ends. The
// framework decides who is in each step: a caller who leaves is in none
// after the step in flight.

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "models/batched_model.h"
#include "service/server_main.h"

namespace {

// Countdown's per-sequence state: where it is.
struct Countdown {
  int64_t next;
};

// CountdownModel streams "from", "from-1", ..., "1", "liftoff!", one number
// per step for every sequence in the batch.
class CountdownModel final : public sluice::BatchedModel<int64_t, std::string, Countdown> {
 public:
  std::string description() const override {
    return "Counts down from `from` to liftoff, one number per step; its calls share steps.";
  }

  const sluice::ParameterSchema& parameters() const override {
    static const sluice::ParameterSchema* const kSchema = new sluice::ParameterSchema({
        sluice::ParameterSpec::Int64("from", 10, 1, 1'000'000, "where the countdown starts"),
    });
    return *kSchema;
  }

  // Sixteen sequences per step; the operator can change it with
  // --model_options=countdown:max_batch=N.
  sluice::BatchLimits limits() const override {
    sluice::BatchLimits limits;
    limits.max_batch = 16;
    return limits;
  }

  absl::StatusOr<int64_t> Decode(const sluice::Request& request) const override {
    return request.params().GetInt64("from");
  }

  absl::StatusOr<std::unique_ptr<Countdown>> Start(int64_t from) override {
    return std::make_unique<Countdown>(Countdown{from});
  }

  absl::Status Step(absl::Span<Countdown* const> batch,
                    absl::Span<sluice::SequenceStep<std::string>> out,
                    const sluice::CancellationToken& /*cancel*/) override {
    for (size_t i = 0; i < batch.size(); ++i) {
      Countdown& c = *batch[i];
      if (c.next == 0) {
        out[i].chunk = "liftoff!";
        out[i].finish = sluice::FinishReason::kStop;
      } else {
        out[i].chunk = absl::StrCat(c.next--, " ");
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Encode(std::string chunk) const override { return chunk; }
};

}  // namespace

int main(int argc, char** argv) {
  return sluice::ServerMain(argc, argv, [](sluice::ModelRegistry* registry) {
    return registry->Register("countdown", std::make_unique<CountdownModel>());
  });
}
