#ifndef SLUICE_MODELS_TORCH_TORCHSCRIPT_PLUGIN_H_
#define SLUICE_MODELS_TORCH_TORCHSCRIPT_PLUGIN_H_

// The entry points of //models/torch:libsluice_torchscript.so, shared by the
// library (torchscript_plugin.cc) and its loader (engine_plugin.cc). Both
// sides are built from the same tree by the same compiler; C linkage only
// keeps the names unmangled for dlsym.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "models/torch/lm_engine.h"

namespace sluice {

// () -> kLmEngineAbiVersion as the library was built.
using SluiceLmEngineAbiFn = int (*)();
inline constexpr char kSluiceLmEngineAbiSymbol[] = "sluice_lm_engine_abi";

// (path, options, result): *result = LoadTorchScriptEngine(*path, *options).
using SluiceLoadTorchScriptEngineFn = void (*)(const std::string*, const LmEngineOptions*,
                                               absl::StatusOr<std::unique_ptr<LmEngine>>*);
inline constexpr char kSluiceLoadTorchScriptEngineSymbol[] = "sluice_load_torchscript_engine";

}  // namespace sluice

#endif  // SLUICE_MODELS_TORCH_TORCHSCRIPT_PLUGIN_H_
