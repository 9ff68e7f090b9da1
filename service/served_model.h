#ifndef SLUICE_SERVICE_SERVED_MODEL_H_
#define SLUICE_SERVICE_SERVED_MODEL_H_

#include <memory>
#include <string>

#include "handlers/executor.h"
#include "handlers/stats.h"
#include "models/model.h"

namespace sluice {

// ServedModel: one registered model as the server runs it. Fixed once the
// server starts; the executor and stats are thread-safe.
struct ServedModel {
  std::string name;
  ModelBase* model = nullptr;
  std::unique_ptr<Executor> executor;
  std::unique_ptr<ModelStats> stats;
};

}  // namespace sluice

#endif  // SLUICE_SERVICE_SERVED_MODEL_H_
