// sluice_server: the stock server, serving the built-in models
// (echo, synthetic, charlm). Run with --help for every flag.

#include <string>

#include "absl/flags/flag.h"
#include "models/builtin.h"
#include "service/server_main.h"

ABSL_FLAG(std::string, charlm_corpus, "",
          "Training text for the charlm model; empty uses the corpus built into the binary.");
ABSL_FLAG(int, charlm_order, 5, "n-gram order of the charlm model (1..12).");

int main(int argc, char** argv) {
  return sluice::ServerMain(argc, argv, [](sluice::ModelRegistry* registry) {
    sluice::BuiltinModelOptions options;
    options.charlm_corpus_path = absl::GetFlag(FLAGS_charlm_corpus);
    options.charlm_order = absl::GetFlag(FLAGS_charlm_order);
    return sluice::RegisterBuiltinModels(options, registry);
  });
}
