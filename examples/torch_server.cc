// An example of serving one's own TorchScript language model from one's own
// binary: link the engine (//models/torch:torchscript_engine) and register a
// TorchLanguageModel. Build and run:
//
//   bazel run //examples:torch_server -- --port=50054 \
//       --model_file=$PWD/models/tinylm/tinylm.pt
//   bazel-bin/client/sluice_cli --target=127.0.0.1:50054 --model=mylm
//       --input='The river' --param max_tokens=100 --stream
//
// The file must follow the module contract (README, "Serving a TorchScript
// language model"); the server checks it when it starts and refuses to start
// with a message saying what is missing or wrong.

#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "models/torch/torch_lm.h"
#include "models/torch/torchscript_engine.h"
#include "service/server_main.h"

ABSL_FLAG(std::string, model_file, "", "The TorchScript file to serve as \"mylm\".");

int main(int argc, char** argv) {
  return sluice::ServerMain(argc, argv, [](sluice::ModelRegistry* registry) {
    sluice::TorchLmOptions options;
    options.path = absl::GetFlag(FLAGS_model_file);
    options.limits.max_batch = 16;  // --model_options=mylm:max_batch=N overrides it
    return registry->Register("mylm", std::make_unique<sluice::TorchLanguageModel>(
                                          options, sluice::LoadTorchScriptEngine));
  });
}
