#ifndef SLUICE_MODELS_ECHO_H_
#define SLUICE_MODELS_ECHO_H_

#include <memory>
#include <string>

#include "models/model.h"

namespace sluice {

struct EchoInput {
  std::string text;
  size_t chunk_bytes = 0;
};

// EchoModel streams its input back in chunks of `chunk_bytes` bytes.
class EchoModel final : public Model<EchoInput, std::string> {
 public:
  std::string description() const override;
  const ParameterSchema& parameters() const override;
  absl::StatusOr<EchoInput> Decode(const Request& request) const override;
  absl::StatusOr<std::unique_ptr<Generator<std::string>>> Predict(
      EchoInput input, const CancellationToken& cancel) override;
  absl::StatusOr<std::string> Encode(std::string chunk) const override { return chunk; }
};

}  // namespace sluice

#endif  // SLUICE_MODELS_ECHO_H_
