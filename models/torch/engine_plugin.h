#ifndef SLUICE_MODELS_TORCH_ENGINE_PLUGIN_H_
#define SLUICE_MODELS_TORCH_ENGINE_PLUGIN_H_

// The TorchScript engine as a shared library (//models/torch:libsluice_torchscript.so),
// loaded at run time. The stock server uses it so that libtorch (some 280
// shared libraries, about 150 MiB of memory mapped at start-up and half a
// second of loading) is mapped only by a server that serves a TorchScript
// model. A program of one's own can link //models/torch:torchscript_engine
// instead and pass LoadTorchScriptEngine.

#include <string>

#include "absl/status/statusor.h"
#include "models/torch/lm_engine.h"

namespace sluice {

// LoadEnginePlugin: loads the engine library at `path` (once per process;
// it stays loaded) and returns its loader. FAILED_PRECONDITION naming the
// file if it cannot be loaded or was built against another LmEngine.
absl::StatusOr<LmEngineLoader> LoadEnginePlugin(const std::string& path);

// DefaultEnginePluginPath: where the build puts the library, relative to
// the running program (bazel-bin/service/sluice_server ->
// bazel-bin/models/torch/libsluice_torchscript.so), also in runfiles.
std::string DefaultEnginePluginPath();

}  // namespace sluice

#endif  // SLUICE_MODELS_TORCH_ENGINE_PLUGIN_H_
