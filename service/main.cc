// sluice_server: the stock server, serving the built-in models
// (echo, synthetic, charlm, batched_synthetic) and any TorchScript language
// models named by --torch_models. Run with --help for every flag.

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "models/builtin.h"
#include "models/torch/engine_plugin.h"
#include "models/torch/torch_lm.h"
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

ABSL_FLAG(std::string, torch_models, "",
          "TorchScript language models to serve, as NAME=PATH[,NAME=PATH...], e.g. "
          "tinylm=models/tinylm/tinylm.pt. Each is checked against the module contract at "
          "start-up (see the README) and served as a batched model under NAME.");
ABSL_FLAG(int, torch_threads, sluice::LmEngineOptions().intra_op_threads,
          "libtorch's intra-op threads, for all TorchScript models (set once, before any "
          "model work). 1 suits small models, whose steps are batched rather than split; raise "
          "it for large ones on a machine with cores to spare.");
ABSL_FLAG(int, torch_prefill_chunk, sluice::TorchLmOptions().prefill_chunk,
          "Prompt tokens a TorchScript model runs per step: a caller who leaves during a long "
          "prompt stops it within one chunk, and the batch's other sequences wait at most one "
          "chunk per step.");
ABSL_FLAG(std::string, torch_engine_library, "",
          "The TorchScript engine library (//models/torch:libsluice_torchscript.so), loaded "
          "only when --torch_models is set; empty: the one built next to this binary.");

namespace {

absl::Status RegisterModels(sluice::ModelRegistry* registry) {
  sluice::BuiltinModelOptions options;
  options.charlm_corpus_path = absl::GetFlag(FLAGS_charlm_corpus);
  options.charlm_order = absl::GetFlag(FLAGS_charlm_order);
  options.models = absl::GetFlag(FLAGS_builtin_models);
  options.synthetic_fault_injection = absl::GetFlag(FLAGS_synthetic_fault_injection);
  if (absl::Status s = sluice::RegisterBuiltinModels(options, registry); !s.ok()) return s;

  const std::string torch_models = absl::GetFlag(FLAGS_torch_models);
  if (torch_models.empty()) return absl::OkStatus();  // libtorch stays unloaded
  if (absl::GetFlag(FLAGS_torch_threads) < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--torch_threads must be at least 1, got ",
                                                   absl::GetFlag(FLAGS_torch_threads)));
  }
  std::string library = absl::GetFlag(FLAGS_torch_engine_library);
  if (library.empty()) library = sluice::DefaultEnginePluginPath();
  absl::StatusOr<sluice::LmEngineLoader> loader = sluice::LoadEnginePlugin(library);
  if (!loader.ok()) return loader.status();
  sluice::TorchLmOptions defaults;
  defaults.engine.intra_op_threads = absl::GetFlag(FLAGS_torch_threads);
  defaults.prefill_chunk = absl::GetFlag(FLAGS_torch_prefill_chunk);
  return sluice::RegisterTorchModels(torch_models, defaults, *loader, registry);
}

}  // namespace

int main(int argc, char** argv) { return sluice::ServerMain(argc, argv, RegisterModels); }
