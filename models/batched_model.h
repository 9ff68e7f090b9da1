#ifndef SLUICE_MODELS_BATCHED_MODEL_H_
#define SLUICE_MODELS_BATCHED_MODEL_H_

// The batched model API: a model whose calls share each model step
// ("continuous batching"). Next to Model<Input, Output> (models/model.h),
// not instead of it: choose this one when one step over many sequences costs
// much less than one step per sequence (a neural network on a matrix engine).
//
// A batched model turns a request into a sequence, and the framework runs
// one loop per model that, at every step boundary:
//   1. releases every sequence whose call ended (cancel, deadline,
//      disconnect, stall, shutdown, error): it is in no later step;
//   2. leaves out sequences whose client is not reading (their stream buffer
//      is full) until the client catches up; the others go on;
//   3. starts queued sequences (FIFO) up to the model's limits;
//   4. calls Step once for the whole batch;
//   5. hands each sequence's chunk to its call.
//
//   struct Countdown { int64_t left; };
//   class Counter : public sluice::BatchedModel<int64_t, int64_t, Countdown> {
//    public:
//     absl::StatusOr<int64_t> Decode(const sluice::Request& r) const override {
//       return r.params().GetInt64("n");
//     }
//     absl::StatusOr<std::unique_ptr<Countdown>> Start(int64_t n) override {
//       return std::make_unique<Countdown>(Countdown{n});
//     }
//     absl::Status Step(absl::Span<Countdown* const> batch,
//                       absl::Span<sluice::SequenceStep<int64_t>> out,
//                       const sluice::CancellationToken&) override {
//       for (size_t i = 0; i < batch.size(); ++i) {
//         out[i].chunk = batch[i]->left--;
//         if (batch[i]->left == 0) out[i].finish = sluice::FinishReason::kStop;
//       }
//       return absl::OkStatus();
//     }
//     absl::StatusOr<std::string> Encode(int64_t v) const override {
//       return absl::StrCat(v, " ");
//     }
//   };

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "models/cancellation.h"
#include "models/generator.h"
#include "models/model.h"

namespace sluice {

// BatchLimits: how a batched model's sequences may be batched. The model
// declares them (BatchedModelBase::limits); the operator may override them
// per model with --model_options (max_batch, max_sequences, batch_wait_us).
struct BatchLimits {
  // max_batch: sequences one Step may advance together.
  int max_batch = 32;
  // max_sequences: sequences that may hold model state at once: those in a
  // step plus those sitting out because their client is not reading. More
  // wait in the queue. 0: twice max_batch.
  int max_sequences = 0;
  // max_state_bytes: a budget for the memory the sequences' state holds (as
  // the model reports it, BatchedModel::StateBytes); a queued sequence is
  // started only while the total is below it. 0: no budget.
  uint64_t max_state_bytes = 0;
  // batch_wait: when fewer than max_batch sequences are ready and more are
  // expected (a call is queued or about to be), how long the loop may wait
  // for them before stepping. Zero (the default): step at once.
  absl::Duration batch_wait = absl::ZeroDuration();
};

// SequenceStep: what one Step did for one sequence of the batch. The
// framework hands Step a default one per sequence ("nothing yet", e.g. a
// step of a long prompt's prefill); the model sets what applies.
template <typename Output>
struct SequenceStep {
  // chunk: at most one chunk of output, handed to Encode.
  std::optional<Output> chunk;
  // finish: the sequence is complete (after `chunk`, if set). It is in no
  // later step, and its state is released.
  std::optional<FinishReason> finish;
  // usage: token counts for the final message, read when `finish` is set.
  std::optional<TokenUsage> usage;
  // error: non-OK if this sequence failed. Only its call ends, with INTERNAL
  // and this message; the others in the batch are unaffected.
  absl::Status error;
};

// BatchedModelBase: the type-erased batched model the framework drives
// (implemented by BatchedModel<Input, Output, State>).
class BatchedModelBase : public ModelBase {
 public:
  // limits: the model's batching limits (see BatchLimits). Read once, when
  // the server starts.
  virtual BatchLimits limits() const { return BatchLimits(); }

  // A sequence as the framework holds it: decoded input until started, the
  // model's state afterwards. Owned by the framework; opaque to it.
  class Sequence {
   public:
    virtual ~Sequence() = default;
  };

  // One sequence's step, encoded for the wire.
  struct EncodedStep {
    std::optional<std::string> chunk;
    std::optional<FinishReason> finish;
    std::optional<TokenUsage> usage;
    absl::Status error;
  };

  // PrepareSequence: validates and decodes a request (on a gRPC thread).
  virtual absl::StatusOr<std::unique_ptr<Sequence>> PrepareSequence(
      absl::string_view model_name, const v1::PredictRequest& request) = 0;
  // StartSequence: Start on a prepared sequence (on the loop thread).
  virtual absl::Status StartSequence(Sequence& sequence) = 0;
  // StepBatch: Step over started sequences, then Encode each chunk. A
  // per-sequence Encode failure becomes that sequence's error.
  virtual absl::Status StepBatch(absl::Span<Sequence* const> batch, absl::Span<EncodedStep> out,
                                 const CancellationToken& cancel) = 0;
  // ReleaseSequence: Release on a started sequence (on the loop thread).
  virtual void ReleaseSequence(Sequence& sequence) = 0;
  // SequenceBytes: StateBytes of a started sequence (on the loop thread).
  virtual uint64_t SequenceBytes(const Sequence& sequence) const = 0;
};

// BatchedModel<Input, Output, State>: the interface a user implements.
// `State` is the model's own per-sequence state (any movable type held by
// unique_ptr: a prompt position, a KV-cache slot, a recurrent state).
//
// Threading: Decode and Encode may run concurrently on any threads and must
// be thread-safe. Start, Step, Release and StateBytes run on the model's own
// loop thread, one at a time: they need no locking among themselves.
template <typename Input, typename Output, typename State>
class BatchedModel : public BatchedModelBase {
 public:
  // Decode: turns a request into the model's input, exactly as
  // Model::Decode does: on a gRPC thread before the request is queued;
  // INVALID_ARGUMENT with a precise message for input the model cannot take.
  virtual absl::StatusOr<Input> Decode(const Request& request) const = 0;

  // Start: begins a sequence, returning the state the model keeps for it.
  // Called at a step boundary, when the sequence joins the batch. It should
  // be cheap: process a long prompt in Step, a piece per step ("chunked
  // prefill"), so that a caller who leaves stops it within one piece. An
  // error ends only this call (INTERNAL with the model's message, unless the
  // model chose another code).
  virtual absl::StatusOr<std::unique_ptr<State>> Start(Input input) = 0;

  // Step: advances every sequence of `batch` by one step, in one call.
  // `out[i]` is for `batch[i]`: zero or one chunk, and whether it finished
  // (see SequenceStep). The batch differs from step to step: sequences join
  // and leave at every boundary, in any order.
  //
  // `cancel` fires when no sequence in this step is wanted any more (their
  // callers left, or the server is shutting down): a long step may poll it
  // and return early; what it returns is then discarded.
  //
  // A non-OK status (or an exception) fails the whole step: every call in it
  // ends with INTERNAL, their state is released, and the server goes on.
  virtual absl::Status Step(absl::Span<State* const> batch, absl::Span<SequenceStep<Output>> out,
                            const CancellationToken& cancel) = 0;

  // Release: the sequence ended, for any reason (finished, failed, its
  // caller left, shutdown); free what `state` holds. Called exactly once for
  // every state Start returned, at the step boundary after the sequence
  // ended, on the loop thread. The default destroys the state.
  virtual void Release(std::unique_ptr<State> state) {}

  // StateBytes: the memory `state` holds now (e.g. its KV cache), for the
  // sluice_batch_state_bytes metric and the max_state_bytes budget. Read
  // after each step. Default 0.
  virtual uint64_t StateBytes(const State& state) const { return 0; }

  // Encode: turns one chunk into the bytes sent as PredictChunk.output.
  virtual absl::StatusOr<std::string> Encode(Output chunk) const = 0;

  // Framework-facing (final): the type erasure of the methods above.
  absl::StatusOr<std::unique_ptr<Sequence>> PrepareSequence(
      absl::string_view model_name, const v1::PredictRequest& request) final;
  absl::Status StartSequence(Sequence& sequence) final;
  absl::Status StepBatch(absl::Span<Sequence* const> batch, absl::Span<EncodedStep> out,
                         const CancellationToken& cancel) final;
  void ReleaseSequence(Sequence& sequence) final;
  uint64_t SequenceBytes(const Sequence& sequence) const final;

 private:
  class Held final : public Sequence {
   public:
    explicit Held(Input input) : input(std::move(input)) {}
    std::optional<Input> input;    // until Start
    std::unique_ptr<State> state;  // from Start until Release
  };
  static Held& Cast(Sequence& s) { return static_cast<Held&>(s); }
  static const Held& Cast(const Sequence& s) { return static_cast<const Held&>(s); }

  // Scratch space for StepBatch, reused from step to step (loop thread only).
  std::vector<State*> states_;
  std::vector<SequenceStep<Output>> steps_;
};

// ---------------------------------------------------------------------------
// Implementation details.

template <typename Input, typename Output, typename State>
absl::StatusOr<std::unique_ptr<BatchedModelBase::Sequence>>
BatchedModel<Input, Output, State>::PrepareSequence(absl::string_view model_name,
                                                    const v1::PredictRequest& request) {
  absl::StatusOr<ParameterValues> params = parameters().Parse(model_name, request.parameters());
  if (!params.ok()) return params.status();
  absl::StatusOr<Input> input = Decode(Request(request, *params));
  if (!input.ok()) return input.status();
  return std::unique_ptr<Sequence>(std::make_unique<Held>(*std::move(input)));
}

template <typename Input, typename Output, typename State>
absl::Status BatchedModel<Input, Output, State>::StartSequence(Sequence& sequence) {
  Held& held = Cast(sequence);
  absl::StatusOr<std::unique_ptr<State>> state = Start(*std::move(held.input));
  held.input.reset();
  if (!state.ok()) return state.status();
  if (*state == nullptr) return absl::InternalError("Start returned a null state");
  held.state = *std::move(state);
  return absl::OkStatus();
}

template <typename Input, typename Output, typename State>
absl::Status BatchedModel<Input, Output, State>::StepBatch(absl::Span<Sequence* const> batch,
                                                           absl::Span<EncodedStep> out,
                                                           const CancellationToken& cancel) {
  states_.clear();
  for (Sequence* s : batch) states_.push_back(Cast(*s).state.get());
  steps_.clear();
  steps_.resize(batch.size());
  absl::Status status = Step(absl::MakeConstSpan(states_), absl::MakeSpan(steps_), cancel);
  if (!status.ok()) return status;
  for (size_t i = 0; i < batch.size(); ++i) {
    SequenceStep<Output>& step = steps_[i];
    EncodedStep& encoded = out[i];
    encoded.error = std::move(step.error);
    if (!encoded.error.ok()) continue;
    if (step.chunk.has_value()) {
      absl::StatusOr<std::string> bytes = Encode(*std::move(step.chunk));
      if (!bytes.ok()) {
        encoded.error = bytes.status();
        continue;
      }
      encoded.chunk = *std::move(bytes);
    }
    encoded.finish = step.finish;
    encoded.usage = step.usage;
  }
  return absl::OkStatus();
}

template <typename Input, typename Output, typename State>
void BatchedModel<Input, Output, State>::ReleaseSequence(Sequence& sequence) {
  Held& held = Cast(sequence);
  if (held.state != nullptr) Release(std::move(held.state));
}

template <typename Input, typename Output, typename State>
uint64_t BatchedModel<Input, Output, State>::SequenceBytes(const Sequence& sequence) const {
  const Held& held = Cast(sequence);
  return held.state == nullptr ? 0 : StateBytes(*held.state);
}

}  // namespace sluice

#endif  // SLUICE_MODELS_BATCHED_MODEL_H_
