// An example of a user's own server binary: one model, registered and served
// with sluice's server library. Build and run:
//
//   bazel run //examples:shout_server -- --port=50052
//   bazel-bin/client/sluice_cli --target=127.0.0.1:50052 --model=shout
//       --input="stop when nobody listens" --stream
//
// The model API has the shape of LitServe's LitAPI: decode a request, predict
// as a generator of chunks, encode each chunk.

#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "models/model.h"
#include "service/server_main.h"

namespace {

struct ShoutInput {
  std::string text;
  int64_t repeat;
};

// Shout streams its input back in capitals, one character per chunk,
// `repeat` times.
class Shout final : public sluice::Model<ShoutInput, char> {
 public:
  std::string description() const override { return "Streams the input back in capitals."; }

  const sluice::ParameterSchema& parameters() const override {
    static const sluice::ParameterSchema* const kSchema = new sluice::ParameterSchema({
        sluice::ParameterSpec::Int64("repeat", 1, 1, 100, "how many times to shout"),
    });
    return *kSchema;
  }

  absl::StatusOr<ShoutInput> Decode(const sluice::Request& request) const override {
    if (request.input().empty()) {
      return absl::InvalidArgumentError("shout needs some input text");
    }
    return ShoutInput{std::string(request.input()), request.params().GetInt64("repeat")};
  }

  absl::StatusOr<std::unique_ptr<sluice::Generator<char>>> Predict(
      ShoutInput input, const sluice::CancellationToken& /*cancel*/) override {
    const size_t total = input.text.size() * static_cast<size_t>(input.repeat);
    return sluice::MakeGenerator<char>([input = std::move(input), total, i = size_t{0}]() mutable {
      if (i == total) return sluice::Step<char>::Done();
      return sluice::Step<char>::Chunk(absl::ascii_toupper(input.text[i++ % input.text.size()]));
    });
  }

  absl::StatusOr<std::string> Encode(char c) const override { return std::string(1, c); }
};

}  // namespace

int main(int argc, char** argv) {
  return sluice::ServerMain(argc, argv, [](sluice::ModelRegistry* registry) {
    return registry->Register("shout", std::make_unique<Shout>());
  });
}
