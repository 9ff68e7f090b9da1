#include "models/builtin.h"

#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
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
  std::string corpus(DefaultCharLmCorpus());
  if (!options.charlm_corpus_path.empty()) {
    absl::StatusOr<std::string> text = ReadFile(options.charlm_corpus_path);
    if (!text.ok()) return text.status();
    corpus = *std::move(text);
  }
  if (absl::Status s = registry->Register("echo", std::make_unique<EchoModel>()); !s.ok()) return s;
  if (absl::Status s = registry->Register("synthetic", std::make_unique<SyntheticModel>());
      !s.ok()) {
    return s;
  }
  return registry->Register("charlm",
                            std::make_unique<CharLmModel>(std::move(corpus), options.charlm_order));
}

}  // namespace sluice
