#ifndef SLUICE_MODELS_GENERATOR_H_
#define SLUICE_MODELS_GENERATOR_H_

#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace sluice {

// FinishReason: why a generator ended on its own (mirrors sluice.v1.FinishReason).
enum class FinishReason {
  kStop,    // the model decided its output is complete
  kLength,  // the output reached a length limit, e.g. max_tokens
};

// TokenUsage: token counts a model may report for a finished call; they
// reach the client in Usage.input_tokens / output_tokens.
struct TokenUsage {
  uint64_t input_tokens = 0;
  uint64_t output_tokens = 0;
};

// Step is what one call to Generator::Next produces: a chunk, the end of the
// output, a request to be resumed later, or an error.
template <typename T>
class Step {
 public:
  enum class Kind { kChunk, kDone, kWait, kError };

  // Chunk: one piece of output, handed to the model's Encode.
  static Step Chunk(T value) { return Step(ChunkValue{std::move(value)}); }

  // Done: the output is complete. Next is not called again.
  static Step Done(FinishReason reason = FinishReason::kStop) { return Step(DoneValue{reason}); }

  // WaitUntil: nothing to emit before `when` (pacing, e.g. waiting on a device
  // that paces output). The framework parks the call without holding a worker
  // thread and calls Next again at or after `when`, unless the call was
  // cancelled in between (then the generator is released instead).
  static Step WaitUntil(absl::Time when) { return Step(WaitValue{when}); }

  // Error: generation failed; the call ends with this status. `status` must
  // not be OK (an OK status becomes INTERNAL). Next is not called again.
  static Step Error(absl::Status status) {
    if (status.ok()) status = absl::InternalError("model returned Step::Error with an OK status");
    return Step(std::move(status));
  }

  Kind kind() const { return static_cast<Kind>(value_.index()); }

  // Accessors; each requires the matching kind().
  T& chunk() { return std::get<ChunkValue>(value_).value; }
  FinishReason finish_reason() const { return std::get<DoneValue>(value_).reason; }
  absl::Time wait_until() const { return std::get<WaitValue>(value_).when; }
  const absl::Status& status() const { return std::get<absl::Status>(value_); }

 private:
  struct ChunkValue {
    T value;
  };
  struct DoneValue {
    FinishReason reason;
  };
  struct WaitValue {
    absl::Time when;
  };
  using Value = std::variant<ChunkValue, DoneValue, WaitValue, absl::Status>;
  explicit Step(Value value) : value_(std::move(value)) {}

  Value value_;
};

// Generator is a model's output for one call: a pull-based sequence of chunks.
//
// Contract:
//   - Next is called on one of the model's worker threads, never concurrently
//     with itself or with the destructor; successive calls may run on
//     different worker threads.
//   - The framework stops calling Next as soon as the call is cancelled and
//     destroys the generator at once: the destructor is where a generator
//     frees what it holds. It may run on any thread and must not block.
//   - Each Next should do one chunk's worth of work. A step that takes long
//     should poll the call's CancellationToken and return early when it is
//     cancelled (the returned step is then discarded).
template <typename T>
class Generator {
 public:
  virtual ~Generator() = default;
  virtual Step<T> Next() = 0;
};

namespace internal {
template <typename T, typename F>
class FunctionGenerator final : public Generator<T> {
 public:
  explicit FunctionGenerator(F fn) : fn_(std::move(fn)) {}
  Step<T> Next() override { return fn_(); }

 private:
  F fn_;
};
}  // namespace internal

// MakeGenerator: a Generator<T> whose Next calls `fn` (a mutable lambda that
// returns Step<T> and owns the generation state in its captures).
template <typename T, typename F>
std::unique_ptr<Generator<T>> MakeGenerator(F fn) {
  static_assert(std::is_same_v<std::invoke_result_t<F&>, Step<T>>,
                "MakeGenerator<T>(fn): fn() must return Step<T>");
  return std::make_unique<internal::FunctionGenerator<T, F>>(std::move(fn));
}

}  // namespace sluice

#endif  // SLUICE_MODELS_GENERATOR_H_
