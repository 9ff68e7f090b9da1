#include "models/builtin.h"

#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/batched_synthetic.h"
#include "models/charlm/charlm.h"
#include "models/echo.h"
#include "models/synthetic.h"

namespace sluice {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open charlm corpus file ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read charlm corpus file ", path));
  return text.str();
}

}  // namespace

absl::Status RegisterBuiltinModels(const BuiltinModelOptions& options, ModelRegistry* registry) {
  const std::vector<std::string> all = {"batched_synthetic", "charlm", "echo", "synthetic"};
  const std::vector<std::string>& wanted = options.models.empty() ? all : options.models;
  for (const std::string& name : wanted) {
    absl::Status status;
    if (name == "echo") {
      status = registry->Register("echo", std::make_unique<EchoModel>());
    } else if (name == "synthetic") {
      status = registry->Register(
          "synthetic", std::make_unique<SyntheticModel>(options.synthetic_fault_injection));
    } else if (name == "batched_synthetic") {
      status = registry->Register("batched_synthetic", std::make_unique<BatchedSyntheticModel>(
                                                           options.synthetic_fault_injection));
    } else if (name == "charlm") {
      std::string corpus(DefaultCharLmCorpus());
      if (!options.charlm_corpus_path.empty()) {
        absl::StatusOr<std::string> text = ReadFile(options.charlm_corpus_path);
        if (!text.ok()) return text.status();
        corpus = *std::move(text);
      }
      status = registry->Register(
          "charlm", std::make_unique<CharLmModel>(std::move(corpus), options.charlm_order));
    } else {
      status =
          absl::InvalidArgumentError(absl::StrCat("there is no built-in model named \"", name,
                                                  "\"; choose from ", absl::StrJoin(all, ", ")));
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace sluice
