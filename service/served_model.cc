#include "service/served_model.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"

namespace sluice {

absl::StatusOr<ServedModel::Work> ServedModel::Prepare(const v1::PredictRequest& request) const {
  Work work;
  absl::Status status;
  try {
    if (generator_model != nullptr) {
      absl::StatusOr<std::unique_ptr<PreparedCall>> prepared =
          generator_model->Prepare(name, request);
      if (prepared.ok()) work.generator = *std::move(prepared);
      status = prepared.status();
    } else {
      absl::StatusOr<std::unique_ptr<BatchedModelBase::Sequence>> sequence =
          batched_model->PrepareSequence(name, request);
      if (sequence.ok()) work.sequence = *std::move(sequence);
      status = sequence.status();
    }
  } catch (const std::exception& e) {
    status = absl::InternalError(absl::StrCat("model ", name, " threw from Decode: ", e.what()));
  } catch (...) {
    status = absl::InternalError(absl::StrCat("model ", name, " threw from Decode"));
  }
  if (!status.ok()) return status;
  return work;
}

absl::Status ServedModel::Admit(const std::shared_ptr<Call>& call, Work work) const {
  if (executor != nullptr) return executor->Admit(call, std::move(work.generator));
  return batcher->Admit(call, std::move(work.sequence));
}

void ServedModel::CancelAll(EndCause cause) const {
  if (executor != nullptr) {
    executor->CancelAll(cause);
  } else {
    batcher->CancelAll(cause);
  }
}

bool ServedModel::WaitIdle(absl::Time deadline) const {
  return executor != nullptr ? executor->WaitIdle(deadline) : batcher->WaitIdle(deadline);
}

bool ServedModel::Stop(absl::Time deadline) const {
  return executor != nullptr ? executor->Stop(deadline) : batcher->Stop(deadline);
}

bool ServedModel::WaitForQueued(int n, absl::Time deadline) const {
  return executor != nullptr ? executor->WaitForQueued(n, deadline)
                             : batcher->WaitForQueued(n, deadline);
}

int ServedModel::queued() const {
  return executor != nullptr ? executor->queued() : batcher->queued();
}

int ServedModel::queue_capacity() const {
  return executor != nullptr ? executor->options().queue_capacity
                             : batcher->options().queue_capacity;
}

}  // namespace sluice
