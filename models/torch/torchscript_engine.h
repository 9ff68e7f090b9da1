#ifndef SLUICE_MODELS_TORCH_TORCHSCRIPT_ENGINE_H_
#define SLUICE_MODELS_TORCH_TORCHSCRIPT_ENGINE_H_

// The LmEngine for TorchScript files, on libtorch (CPU). Link this target
// to use it directly (a user's own binary, tests); the stock server loads
// the same code from a shared library instead (see engine_plugin.h).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "models/torch/lm_engine.h"

namespace sluice {

// LoadTorchScriptEngine: loads the TorchScript file at `path` and checks it
// against the module contract (README, "Serving a TorchScript language
// model") by calling every method on a small input. Fails with NOT_FOUND if
// the file is missing, INVALID_ARGUMENT if it is not TorchScript, lacks a
// method, or a method returns the wrong type or shape: the message names the
// file, the method, what it returned and what was expected.
absl::StatusOr<std::unique_ptr<LmEngine>> LoadTorchScriptEngine(const std::string& path,
                                                                const LmEngineOptions& options);

}  // namespace sluice

#endif  // SLUICE_MODELS_TORCH_TORCHSCRIPT_ENGINE_H_
