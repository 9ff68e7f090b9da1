#ifndef SLUICE_MODELS_REGISTRY_H_
#define SLUICE_MODELS_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "models/model.h"

namespace sluice {

// ModelRegistry: the models a server serves, by name. Filled before the
// server starts; read-only afterwards (so lookups need no lock).
class ModelRegistry {
 public:
  // Register: adds `model` under `name`. A name is 1..64 characters of
  // [A-Za-z0-9_.-]. ALREADY_EXISTS if the name is taken.
  absl::Status Register(std::string name, std::unique_ptr<ModelBase> model);

  // Find: the model registered as `name`, or nullptr.
  ModelBase* Find(absl::string_view name) const;

  // names: every registered name, sorted.
  std::vector<std::string> names() const;

  bool empty() const { return models_.empty(); }

 private:
  std::map<std::string, std::unique_ptr<ModelBase>, std::less<>> models_;
};

}  // namespace sluice

#endif  // SLUICE_MODELS_REGISTRY_H_
