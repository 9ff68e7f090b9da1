#include "models/echo.h"

#include <utility>

namespace sluice {

std::string EchoModel::description() const {
  return "Streams the input back in chunks of chunk_bytes bytes.";
}

const ParameterSchema& EchoModel::parameters() const {
  static const ParameterSchema* const kSchema = new ParameterSchema({
      ParameterSpec::Int64("chunk_bytes", 4, 1, 1 << 20, "bytes per chunk"),
  });
  return *kSchema;
}

absl::StatusOr<EchoInput> EchoModel::Decode(const Request& request) const {
  return EchoInput{std::string(request.input()),
                   static_cast<size_t>(request.params().GetInt64("chunk_bytes"))};
}

absl::StatusOr<std::unique_ptr<Generator<std::string>>> EchoModel::Predict(
    EchoInput input, const CancellationToken& /*cancel*/) {
  return MakeGenerator<std::string>([input = std::move(input), pos = size_t{0}]() mutable {
    if (pos >= input.text.size()) return Step<std::string>::Done(FinishReason::kStop);
    std::string chunk = input.text.substr(pos, input.chunk_bytes);
    pos += chunk.size();
    return Step<std::string>::Chunk(std::move(chunk));
  });
}

}  // namespace sluice
