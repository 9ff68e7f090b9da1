// //models/torch:libsluice_torchscript.so: the TorchScript engine, for
// programs that load it at run time (see engine_plugin.h).

#include "models/torch/torchscript_plugin.h"

#include "models/torch/torchscript_engine.h"

extern "C" {

int sluice_lm_engine_abi() { return sluice::kLmEngineAbiVersion; }

void sluice_load_torchscript_engine(const std::string* path, const sluice::LmEngineOptions* options,
                                    absl::StatusOr<std::unique_ptr<sluice::LmEngine>>* result) {
  *result = sluice::LoadTorchScriptEngine(*path, *options);
}

}  // extern "C"
