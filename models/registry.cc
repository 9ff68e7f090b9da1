#include "models/registry.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

bool IsValidName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

}  // namespace

absl::Status ModelRegistry::Register(std::string name, std::unique_ptr<ModelBase> model) {
  if (!IsValidName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model name \"", name, "\" is invalid: use 1..64 characters of [A-Za-z0-9_.-]"));
  }
  if (model == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("model ", name, " is null"));
  }
  auto [it, inserted] = models_.emplace(std::move(name), std::move(model));
  if (!inserted) {
    return absl::AlreadyExistsError(
        absl::StrCat("a model named ", it->first, " is already registered"));
  }
  return absl::OkStatus();
}

ModelBase* ModelRegistry::Find(absl::string_view name) const {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second.get();
}

std::vector<std::string> ModelRegistry::names() const {
  std::vector<std::string> out;
  out.reserve(models_.size());
  for (const auto& entry : models_) out.push_back(entry.first);
  return out;
}

}  // namespace sluice
