#include "models/torch/engine_plugin.h"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "models/torch/torchscript_plugin.h"

namespace sluice {

absl::StatusOr<LmEngineLoader> LoadEnginePlugin(const std::string& path) {
  // RTLD_LOCAL: the library's symbols (and libtorch's) stay out of the way
  // of the program's. Never closed: engines it made may live until exit.
  void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load the TorchScript engine library ", path, ": ", dlerror(),
                     " (build it with bazel build //models/torch:libsluice_torchscript.so, or "
                     "name it with --torch_engine_library)"));
  }
  auto abi = reinterpret_cast<SluiceLmEngineAbiFn>(dlsym(library, kSluiceLmEngineAbiSymbol));
  auto load = reinterpret_cast<SluiceLoadTorchScriptEngineFn>(
      dlsym(library, kSluiceLoadTorchScriptEngineSymbol));
  if (abi == nullptr || load == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a sluice TorchScript engine library (it lacks ",
                     kSluiceLmEngineAbiSymbol, " or ", kSluiceLoadTorchScriptEngineSymbol, ")"));
  }
  if (abi() != kLmEngineAbiVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " was built for engine interface version ", abi(),
                     "; this program needs version ", kLmEngineAbiVersion, ": rebuild it"));
  }
  return LmEngineLoader([load](const std::string& file, const LmEngineOptions& options) {
    absl::StatusOr<std::unique_ptr<LmEngine>> engine =
        absl::InternalError("the engine library returned nothing");
    load(&file, &options, &engine);
    return engine;
  });
}

std::string DefaultEnginePluginPath() {
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return "libsluice_torchscript.so";
  std::string dir(exe, static_cast<size_t>(n));
  dir = dir.substr(0, dir.rfind('/'));  // .../bin/service
  dir = dir.substr(0, dir.rfind('/'));  // .../bin
  return absl::StrCat(dir, "/models/torch/libsluice_torchscript.so");
}

}  // namespace sluice
