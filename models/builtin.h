#ifndef SLUICE_MODELS_BUILTIN_H_
#define SLUICE_MODELS_BUILTIN_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "models/registry.h"

namespace sluice {

// BuiltinModelOptions configures the models the stock server ships.
struct BuiltinModelOptions {
  // Training text for charlm; empty uses the corpus compiled into the binary.
  std::string charlm_corpus_path;
  // n-gram order of charlm (1..12).
  int charlm_order = 5;
  // Which built-in models to register; empty registers all of them.
  std::vector<std::string> models;
  // Whether synthetic and batched_synthetic accept fault injection (fail_at,
  // throw_at, hang_at).
  bool synthetic_fault_injection = false;
};

// RegisterBuiltinModels registers the built-in models ("batched_synthetic",
// "charlm", "echo", "synthetic", or those named in options.models). Fails if a name is unknown,
// the corpus file cannot be read, or a name is already taken.
absl::Status RegisterBuiltinModels(const BuiltinModelOptions& options, ModelRegistry* registry);

}  // namespace sluice

#endif  // SLUICE_MODELS_BUILTIN_H_
