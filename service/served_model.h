#ifndef SLUICE_SERVICE_SERVED_MODEL_H_
#define SLUICE_SERVICE_SERVED_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "handlers/batch_scheduler.h"
#include "handlers/call.h"
#include "handlers/executor.h"
#include "handlers/stats.h"
#include "models/batched_model.h"
#include "models/model.h"
#include "sluice/v1/inference.pb.h"

namespace sluice {

// ServedModel: one registered model as the server runs it, of either kind:
// a generator model, run by an Executor (one generator per call, stepped by
// worker threads), or a batched model, run by a BatchScheduler (one loop
// stepping all its calls together). Fixed once the server starts; the
// driver and stats are thread-safe.
struct ServedModel {
  std::string name;
  ModelBase* model = nullptr;
  // Exactly one of each pair is set.
  GeneratorModelBase* generator_model = nullptr;
  BatchedModelBase* batched_model = nullptr;
  std::unique_ptr<Executor> executor;
  std::unique_ptr<BatchScheduler> batcher;
  std::unique_ptr<ModelStats> stats;

  // Work: a request the model decoded, ready to admit.
  struct Work {
    std::unique_ptr<PreparedCall> generator;
    std::unique_ptr<BatchedModelBase::Sequence> sequence;
  };
  // Prepare: validates and decodes `request` (the model's Decode). An
  // exception from the model becomes INTERNAL.
  absl::StatusOr<Work> Prepare(const v1::PredictRequest& request) const;
  // Admit: hands `call` and its work to the model's driver.
  absl::Status Admit(const std::shared_ptr<Call>& call, Work work) const;

  // Over the driver, whichever it is.
  void CancelAll(EndCause cause) const;
  bool WaitIdle(absl::Time deadline) const;
  bool Stop(absl::Time deadline) const;
  bool WaitForQueued(int n, absl::Time deadline) const;
  int queued() const;
  int queue_capacity() const;
};

}  // namespace sluice

#endif  // SLUICE_SERVICE_SERVED_MODEL_H_
