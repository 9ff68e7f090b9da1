// sluice_server: the stock server, serving the built-in models
// (echo, synthetic, charlm, batched_synthetic). Run with --help for every flag.

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "models/builtin.h"
#include "service/server_main.h"

ABSL_FLAG(std::string, charlm_corpus, "",
          "Training text for the charlm model; empty uses the corpus built into the binary.");
ABSL_FLAG(int, charlm_order, 5, "n-gram order of the charlm model (1..12).");
ABSL_FLAG(std::vector<std::string>, builtin_models,
          std::vector<std::string>({"batched_synthetic", "charlm", "echo", "synthetic"}),
          "The built-in models to serve, comma-separated.");
ABSL_FLAG(bool, synthetic_fault_injection, false,
          "Let clients inject faults into the synthetic and batched_synthetic models (fail_at, "
          "throw_at, hang_at). For testing; never on a server untrusted clients can reach.");

int main(int argc, char** argv) {
  return sluice::ServerMain(argc, argv, [](sluice::ModelRegistry* registry) {
    sluice::BuiltinModelOptions options;
    options.charlm_corpus_path = absl::GetFlag(FLAGS_charlm_corpus);
    options.charlm_order = absl::GetFlag(FLAGS_charlm_order);
    options.models = absl::GetFlag(FLAGS_builtin_models);
    options.synthetic_fault_injection = absl::GetFlag(FLAGS_synthetic_fault_injection);
    return sluice::RegisterBuiltinModels(options, registry);
  });
}
