#ifndef SLUICE_MODELS_TORCH_LM_ENGINE_H_
#define SLUICE_MODELS_TORCH_LM_ENGINE_H_

// LmEngine: a language model that runs token ids through a neural network,
// behind an interface with no libtorch types, so that only the one file that
// implements it (torchscript_engine.cc) includes libtorch's headers, and a
// program can load that implementation from a shared library when it is
// asked to (service/main.cc does: a server that serves no TorchScript model
// never maps libtorch).
//
// The engine knows tokens, positions, caches and logits; what a request
// means (sampling, stop strings, bytes on the wire) is TorchLanguageModel's
// business (models/torch/torch_lm.h).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace sluice {

// LmEngineOptions: how an engine runs.
struct LmEngineOptions {
  // intra_op_threads: libtorch's intra-op threads, and OpenBLAS's if that is
  // the BLAS loaded. Process-wide: the first engine loaded sets it (before
  // any model work); 0 keeps the libraries' defaults.
  int intra_op_threads = 1;
  // optimize: freeze the module and optimise it for inference at load (as
  // torch.jit.freeze and torch.jit.optimize_for_inference do); a module that
  // cannot be is served as loaded.
  bool optimize = true;
};

// LmEngineInfo: what loading learned from the model; fixed afterwards.
struct LmEngineInfo {
  int64_t vocab_size = 0;    // V: token ids are 0..V-1; 0..255 are the bytes
  int64_t eos_token = -1;    // the id that ends a text, or -1 if the model has none
  int64_t max_len = 0;       // the context: positions 0..max_len-1
  uint64_t cache_bytes = 0;  // one sequence's cache
  std::string cache_layout;  // one sequence's cache, e.g. "[1, 4, 2, 256, 128] float32"
  std::string logits_dtype;  // e.g. "float32"
};

// LmEngine: one loaded model.
//
// Threading: info() and live_caches()/live_cache_bytes() are thread-safe.
// Everything else runs on one thread at a time (the model's loop thread),
// including the destruction of caches.
class LmEngine {
 public:
  // Cache: one sequence's state in the model (its KV cache, or recurrent
  // state). Destroying it frees it: its bytes leave live_cache_bytes() at
  // once. Every cache is destroyed before its engine.
  class Cache {
   public:
    virtual ~Cache() = default;
  };

  virtual ~LmEngine() = default;

  virtual const LmEngineInfo& info() const = 0;

  // NewCache: an empty cache for a new sequence (nothing at any position).
  virtual absl::StatusOr<std::unique_ptr<Cache>> NewCache() = 0;

  // Prefill: runs `tokens` (1..max_len) through the model at positions
  // start..start+tokens.size()-1 of `cache`, which must hold positions
  // 0..start-1 already; writes the logits of the last token to `logits`
  // (vocab_size values).
  virtual absl::Status Prefill(Cache& cache, absl::Span<const int64_t> tokens, int64_t start,
                               absl::Span<double> logits) = 0;

  // Decode: one token for each of a batch of sequences, in one model call:
  // tokens[i] at positions[i] of caches[i] (which holds positions before
  // it). Writes sequence i's logits to logits[i * vocab_size, ...]. The
  // caches must be distinct.
  virtual absl::Status Decode(absl::Span<Cache* const> caches, absl::Span<const int64_t> tokens,
                              absl::Span<const int64_t> positions, absl::Span<double> logits) = 0;

  // The engine's own accounting: caches that exist and the bytes they hold.
  virtual int64_t live_caches() const = 0;
  virtual uint64_t live_cache_bytes() const = 0;
};

// kLmEngineAbiVersion: changes whenever this header changes in a way that
// a separately built engine library (engine_plugin.h) would disagree with.
inline constexpr int kLmEngineAbiVersion = 1;

// LmEngineLoader: loads the model file at `path` and checks it against the
// contract (README, "Serving a TorchScript language model"). Errors name the
// file, what is wrong and what was expected.
using LmEngineLoader = std::function<absl::StatusOr<std::unique_ptr<LmEngine>>(
    const std::string& path, const LmEngineOptions& options)>;

}  // namespace sluice

#endif  // SLUICE_MODELS_TORCH_LM_ENGINE_H_
