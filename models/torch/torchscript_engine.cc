// The one translation unit that includes libtorch's headers (about 12 s to
// compile): keep it that way.

#include "models/torch/torchscript_engine.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <torch/script.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "glog/logging.h"

namespace sluice {
namespace {

// The contract's methods, as the README states them, for messages.
struct MethodSpec {
  const char* name;
  const char* signature;
};
constexpr MethodSpec kContract[] = {
    {"vocab_size", "vocab_size() -> int"},
    {"eos_token", "eos_token() -> int"},
    {"max_len", "max_len() -> int"},
    {"new_cache", "new_cache() -> Tensor [1, ...]"},
    {"prefill",
     "prefill(tokens: Tensor [1, T] int64, start: int, cache: Tensor [1, ...]) -> "
     "(Tensor [1, V], Tensor [1, ...])"},
    {"decode",
     "decode(tokens: Tensor [B] int64, positions: Tensor [B] int64, cache: Tensor [B, ...]) -> "
     "(Tensor [B, V], Tensor [B, ...])"},
};
constexpr char kSeeReadme[] = " (see the README: Serving a TorchScript language model)";

// Slots the cache pool starts with, and never shrinks below while in use.
constexpr int64_t kMinSlots = 8;

std::string DtypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "float32";
    case at::kDouble:
      return "float64";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kLong:
      return "int64";
    case at::kInt:
      return "int32";
    case at::kBool:
      return "bool";
    default:
      return c10::toString(t);
  }
}

std::string Describe(const at::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "] ", DtypeName(t.scalar_type()));
}

std::string Describe(const c10::IValue& v) {
  if (v.isTensor()) return absl::StrCat("a Tensor ", Describe(v.toTensor()));
  return absl::StrCat("a value of type ", v.tagKind());
}

// Shape: `t`'s sizes as a vector, for comparisons.
std::vector<int64_t> Shape(const at::Tensor& t) { return t.sizes().vec(); }

// What libtorch said, without its C++ backtrace.
std::string TorchMessage(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

// CopyLogits: row `row` of `logits` ([B, V], a floating dtype) to `out`;
// float32 and float64 are read where they lie, others converted first (the
// row alone: Decode converts a whole batch's once).
void CopyLogits(const at::Tensor& logits, int64_t row, absl::Span<double> out) {
  if (logits.scalar_type() == at::kFloat) {
    const auto rows = logits.accessor<float, 2>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = rows[row][static_cast<int64_t>(i)];
  } else if (logits.scalar_type() == at::kDouble) {
    const auto rows = logits.accessor<double, 2>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = rows[row][static_cast<int64_t>(i)];
  } else {
    CopyLogits(logits.select(0, row).unsqueeze(0).to(at::kDouble), 0, out);
  }
}

// Whether `a` and `b` are the same elements (so copying one to the other is
// a no-op): the module returned the cache it was given, updated in place.
bool SameElements(const at::Tensor& a, const at::Tensor& b) {
  return a.is_same(b) || (a.data_ptr() == b.data_ptr() && a.sizes() == b.sizes() &&
                          a.strides() == b.strides() && a.scalar_type() == b.scalar_type());
}

// SetOpenBlasThreads: OpenBLAS (Debian's libtorch reaches it through the
// libblas.so.3 alternative) runs a thread pool of its own, as large as the
// machine, beside libtorch's: a matrix product would use it whatever
// at::set_num_threads says. Sized to match, if OpenBLAS is the BLAS loaded.
void SetOpenBlasThreads(int threads) {
  void* openblas = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
  if (openblas == nullptr) return;  // another BLAS: nothing of OpenBLAS's to size
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(openblas, "openblas_set_num_threads"))) {
    set(threads);
  }
  dlclose(openblas);  // drops the reference NOLOAD took; the library stays
}

// ConfigureThreads: libtorch's thread pools are process-wide and must be
// sized before any work; the first engine does it.
void ConfigureThreads(int intra_op_threads) {
  static std::once_flag once;
  static int configured = 0;
  std::call_once(once, [intra_op_threads] {
    configured = intra_op_threads;
    if (intra_op_threads > 0) {
      at::set_num_threads(intra_op_threads);
      SetOpenBlasThreads(intra_op_threads);
    }
    // The contract's methods run one at a time on the model's loop thread;
    // nothing forks inter-op work. One thread, set before any could start.
    try {
      at::set_num_interop_threads(1);
    } catch (const std::exception& e) {
      LOG(WARNING) << "libtorch's inter-op pool was already started: " << TorchMessage(e);
    }
  });
  if (intra_op_threads != configured) {
    LOG(WARNING) << "libtorch's intra-op threads were already set to " << configured
                 << " by the first model loaded; " << intra_op_threads << " was asked for";
  }
}

class TorchScriptEngine final : public LmEngine {
 public:
  static absl::StatusOr<std::unique_ptr<LmEngine>> Load(const std::string& path,
                                                        const LmEngineOptions& options);

  const LmEngineInfo& info() const override { return info_; }
  absl::StatusOr<std::unique_ptr<Cache>> NewCache() override;
  absl::Status Prefill(Cache& cache, absl::Span<const int64_t> tokens, int64_t start,
                       absl::Span<double> logits) override;
  absl::Status Decode(absl::Span<Cache* const> caches, absl::Span<const int64_t> tokens,
                      absl::Span<const int64_t> positions, absl::Span<double> logits) override;
  int64_t live_caches() const override { return live_.load(std::memory_order_relaxed); }
  uint64_t live_cache_bytes() const override {
    return static_cast<uint64_t>(live_caches()) * info_.cache_bytes;
  }

 private:
  // Slot: a cache is a row of the pool (see pool_), moved when the pool is
  // compacted; the engine keeps track of which.
  class Slot final : public Cache {
   public:
    Slot(TorchScriptEngine* engine, int64_t row) : engine_(engine), row(row) {}
    ~Slot() override { engine_->Free(*this); }
    TorchScriptEngine* const engine_;
    int64_t row;
  };

  TorchScriptEngine(std::string path, torch::jit::Module module)
      : path_(std::move(path)), module_(std::move(module)) {}

  // Validate: reads the model's constants and calls every method of the
  // contract once, checking what each returns.
  absl::Status Validate();
  // Optimize: freezes the module (its parameters become constants) and lets
  // libtorch optimise it for inference; keeps the module as loaded if that
  // fails or the result fails Validate.
  void Optimize();
  absl::StatusOr<c10::IValue> Call(const char* method, std::vector<c10::IValue> args,
                                   absl::string_view input_description);
  absl::StatusOr<int64_t> CallInt(const char* method);
  // CheckStep: what prefill or decode returned for `batch` sequences, given
  // `cache_in`; on success, the logits and the cache.
  absl::StatusOr<std::pair<at::Tensor, at::Tensor>> CheckStep(const char* method,
                                                              const c10::IValue& result,
                                                              int64_t batch,
                                                              const at::Tensor& cache_in) const;
  absl::Status Error(absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat("TorchScript model ", path_, ": ", message));
  }

  // The cache pool: one tensor [capacity, ...] whose rows [0, live_) are the
  // caches that exist, so that a batch of them is a slice, not a copy. Rows
  // move when a cache is freed (the last row fills the hole) and when
  // Decode gathers its batch at the front; owners_ follows them.
  void Free(Slot& slot);
  void SwapRows(int64_t a, int64_t b);
  void Reserve(int64_t rows);

  const std::string path_;
  torch::jit::Module module_;
  std::optional<torch::jit::Method> prefill_, decode_;
  LmEngineInfo info_;
  at::Tensor empty_;     // new_cache()'s result [1, ...], copied into each new slot
  at::Tensor pool_;      // undefined while no cache exists
  at::Tensor swap_row_;  // SwapRows' scratch row, made at the first swap
  std::vector<Slot*> owners_;
  std::atomic<int64_t> live_{0};
  std::vector<char> wanted_;  // Decode's scratch: rows in the batch
  std::vector<int64_t> row_tokens_, row_positions_;
};

absl::StatusOr<std::unique_ptr<LmEngine>> TorchScriptEngine::Load(const std::string& path,
                                                                  const LmEngineOptions& options) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    const int err = errno;
    const std::string what =
        absl::StrCat("TorchScript model ", path, ": cannot open it: ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(what) : absl::FailedPreconditionError(what);
  }
  ConfigureThreads(options.intra_op_threads);
  torch::jit::Module module;
  try {
    c10::InferenceMode guard;
    module = torch::jit::load(path, torch::kCPU);
    module.eval();
  } catch (const std::exception& e) {
    std::string message = TorchMessage(e);
    message = message.substr(0, message.find('\n'));
    return absl::InvalidArgumentError(absl::StrCat(
        "TorchScript model ", path,
        ": not a TorchScript file (save one with torch.jit.script(module).save(path)): "
        "torch::jit::load says: ",
        message));
  }
  auto engine = std::unique_ptr<TorchScriptEngine>(new TorchScriptEngine(path, std::move(module)));
  if (absl::Status s = engine->Validate(); !s.ok()) return s;
  if (options.optimize) engine->Optimize();
  return std::unique_ptr<LmEngine>(std::move(engine));
}

void TorchScriptEngine::Optimize() {
  if (!module_.find_method("forward").has_value()) {
    LOG(INFO) << "TorchScript model " << path_
              << ": served as loaded (freezing it for inference needs a forward method)";
    return;
  }
  torch::jit::Module loaded = module_;
  try {
    std::vector<std::string> methods;
    for (const MethodSpec& m : kContract) methods.push_back(m.name);
    torch::jit::Module frozen = torch::jit::freeze(module_, methods);
    module_ = torch::jit::optimize_for_inference(frozen, {"prefill", "decode"});
  } catch (const std::exception& e) {
    LOG(WARNING) << "TorchScript model " << path_
                 << ": cannot be frozen for inference; serving it as loaded: " << TorchMessage(e);
    return;
  }
  // What is served is checked like what was loaded.
  if (absl::Status s = Validate(); !s.ok()) {
    LOG(WARNING) << "TorchScript model " << path_
                 << ": frozen for inference, it fails the contract; serving it as loaded: " << s;
    module_ = std::move(loaded);
    if (absl::Status again = Validate(); !again.ok()) LOG(ERROR) << again;
  }
}

absl::StatusOr<c10::IValue> TorchScriptEngine::Call(const char* method,
                                                    std::vector<c10::IValue> args,
                                                    absl::string_view input_description) {
  try {
    c10::InferenceMode guard;
    return module_.get_method(method)(std::move(args));
  } catch (const std::exception& e) {
    return Error(
        absl::StrCat("calling ", method, "(", input_description, ") failed: ", TorchMessage(e)));
  }
}

absl::StatusOr<int64_t> TorchScriptEngine::CallInt(const char* method) {
  absl::StatusOr<c10::IValue> v = Call(method, {}, "");
  if (!v.ok()) return v.status();
  if (!v->isInt()) {
    return Error(absl::StrCat(method, "() returned ", Describe(*v), "; expected an int"));
  }
  return v->toInt();
}

absl::StatusOr<std::pair<at::Tensor, at::Tensor>> TorchScriptEngine::CheckStep(
    const char* method, const c10::IValue& result, int64_t batch,
    const at::Tensor& cache_in) const {
  if (!result.isTuple() || result.toTupleRef().elements().size() != 2 ||
      !result.toTupleRef().elements()[0].isTensor() ||
      !result.toTupleRef().elements()[1].isTensor()) {
    return Error(absl::StrCat(method, " returned ", Describe(result),
                              "; expected a tuple (logits, cache) of two Tensors"));
  }
  const auto& elements = result.toTupleRef().elements();
  at::Tensor logits = elements[0].toTensor();
  at::Tensor cache = elements[1].toTensor();
  if (logits.dim() != 2 || logits.size(0) != batch || logits.size(1) != info_.vocab_size ||
      !at::isFloatingType(logits.scalar_type())) {
    return Error(absl::StrCat(method, " returned logits ", Describe(logits), "; expected [", batch,
                              ", ", info_.vocab_size,
                              "] (batch, vocab_size()) of a floating-point dtype"));
  }
  if (cache.sizes() != cache_in.sizes() || cache.scalar_type() != cache_in.scalar_type()) {
    return Error(absl::StrCat(method, " returned a cache ", Describe(cache), "; expected ",
                              Describe(cache_in),
                              ", the shape and dtype of the cache it was given"));
  }
  return std::make_pair(std::move(logits), std::move(cache));
}

absl::Status TorchScriptEngine::Validate() {
  std::vector<std::string> missing;
  for (const MethodSpec& m : kContract) {
    if (!module_.find_method(m.name).has_value()) missing.push_back(m.signature);
  }
  if (!missing.empty()) {
    return Error(absl::StrCat("lacks ", missing.size() == 1 ? "the method " : "the methods ",
                              absl::StrJoin(missing, "; "),
                              ". A TorchScript language model exports them with "
                              "@torch.jit.export",
                              kSeeReadme));
  }
  prefill_ = module_.get_method("prefill");
  decode_ = module_.get_method("decode");

  absl::StatusOr<int64_t> vocab = CallInt("vocab_size");
  if (!vocab.ok()) return vocab.status();
  if (*vocab < 256) {
    return Error(absl::StrCat("vocab_size() is ", *vocab,
                              "; expected at least 256 (ids 0..255 are the bytes 0..255)"));
  }
  info_.vocab_size = *vocab;
  absl::StatusOr<int64_t> eos = CallInt("eos_token");
  if (!eos.ok()) return eos.status();
  if (*eos != -1 && (*eos < 256 || *eos >= *vocab)) {
    return Error(absl::StrCat("eos_token() is ", *eos, "; expected -1 (none) or an id in 256..",
                              *vocab - 1, " (ids 0..255 are bytes)"));
  }
  info_.eos_token = *eos;
  absl::StatusOr<int64_t> max_len = CallInt("max_len");
  if (!max_len.ok()) return max_len.status();
  if (*max_len < 2) {
    return Error(absl::StrCat("max_len() is ", *max_len, "; expected at least 2"));
  }
  info_.max_len = *max_len;

  absl::StatusOr<c10::IValue> empty = Call("new_cache", {}, "");
  if (!empty.ok()) return empty.status();
  if (!empty->isTensor() || empty->toTensor().dim() < 1 || empty->toTensor().size(0) != 1 ||
      empty->toTensor().numel() == 0) {
    return Error(absl::StrCat("new_cache() returned ", Describe(*empty),
                              "; expected a non-empty Tensor [1, ...] (one sequence's cache)"));
  }
  try {
    c10::InferenceMode guard;
    empty_ = empty->toTensor().contiguous().clone();
  } catch (const std::exception& e) {
    return Error(absl::StrCat("copying new_cache()'s result failed: ", TorchMessage(e)));
  }
  info_.cache_bytes = static_cast<uint64_t>(empty_.nbytes());
  info_.cache_layout = Describe(empty_);

  // One prefill of two tokens, then a decode of a batch of two: the one
  // prefilled (at position 2) and a new one (at position 0).
  const int64_t first = info_.eos_token >= 0 ? info_.eos_token : 0;
  at::Tensor prefilled;
  {
    c10::InferenceMode guard;
    const at::Tensor tokens = torch::tensor({first, int64_t{1}}, torch::kLong).reshape({1, 2});
    absl::StatusOr<c10::IValue> out = Call("prefill", {tokens, int64_t{0}, empty_.clone()},
                                           "tokens [1, 2] int64, start 0, cache from new_cache()");
    if (!out.ok()) return out.status();
    absl::StatusOr<std::pair<at::Tensor, at::Tensor>> checked =
        CheckStep("prefill", *out, 1, empty_);
    if (!checked.ok()) return checked.status();
    info_.logits_dtype = DtypeName(checked->first.scalar_type());
    prefilled = checked->second;
  }
  {
    c10::InferenceMode guard;
    const at::Tensor cache = at::cat({prefilled, empty_});
    absl::StatusOr<c10::IValue> out =
        Call("decode",
             {torch::tensor({int64_t{2}, first}, torch::kLong),
              torch::tensor({int64_t{2}, int64_t{0}}, torch::kLong), cache},
             absl::StrCat("tokens [2] int64, positions [2] int64, cache ", Describe(cache)));
    if (!out.ok()) return out.status();
    absl::StatusOr<std::pair<at::Tensor, at::Tensor>> checked = CheckStep("decode", *out, 2, cache);
    if (!checked.ok()) return checked.status();
  }
  return absl::OkStatus();
}

// --- The cache pool ------------------------------------------------------------

void TorchScriptEngine::Reserve(int64_t rows) {
  const int64_t capacity = pool_.defined() ? pool_.size(0) : 0;
  if (rows <= capacity) return;
  std::vector<int64_t> shape = Shape(empty_);
  shape[0] = std::max({kMinSlots, 2 * capacity, rows});
  at::Tensor grown = at::empty(shape, empty_.options());
  const int64_t live = live_caches();
  if (live > 0) grown.narrow(0, 0, live).copy_(pool_.narrow(0, 0, live));
  pool_ = std::move(grown);
}

absl::StatusOr<std::unique_ptr<LmEngine::Cache>> TorchScriptEngine::NewCache() {
  try {
    c10::InferenceMode guard;
    const int64_t row = live_caches();
    Reserve(row + 1);
    pool_.narrow(0, row, 1).copy_(empty_);
    auto slot = std::make_unique<Slot>(this, row);
    owners_.push_back(slot.get());
    live_.store(row + 1, std::memory_order_relaxed);
    return std::unique_ptr<Cache>(std::move(slot));
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("TorchScript model ", path_,
                                                     ": cannot allocate a cache of ",
                                                     info_.cache_layout, ": ", TorchMessage(e)));
  }
}

void TorchScriptEngine::SwapRows(int64_t a, int64_t b) {
  if (!swap_row_.defined()) swap_row_ = at::empty_like(pool_.select(0, a));
  swap_row_.copy_(pool_.select(0, a));
  pool_.select(0, a).copy_(pool_.select(0, b));
  pool_.select(0, b).copy_(swap_row_);
  std::swap(owners_[a], owners_[b]);
  owners_[a]->row = a;
  owners_[b]->row = b;
}

void TorchScriptEngine::Free(Slot& slot) {
  try {
    c10::InferenceMode guard;
    const int64_t last = live_caches() - 1;
    if (slot.row != last) {
      pool_.select(0, slot.row).copy_(pool_.select(0, last));
      owners_[slot.row] = owners_[last];
      owners_[slot.row]->row = slot.row;
    }
    owners_.pop_back();
    live_.store(last, std::memory_order_relaxed);
    // Give memory back once the pool is mostly empty.
    if (last == 0) {
      pool_ = at::Tensor();
    } else if (pool_.size(0) > kMinSlots && last <= pool_.size(0) / 4) {
      pool_ = pool_.narrow(0, 0, pool_.size(0) / 2).clone();
    }
  } catch (const std::exception& e) {
    LOG(ERROR) << "TorchScript model " << path_ << ": freeing a cache failed: " << TorchMessage(e);
  }
}

// --- Prefill and decode -------------------------------------------------------

absl::Status TorchScriptEngine::Prefill(Cache& cache, absl::Span<const int64_t> tokens,
                                        int64_t start, absl::Span<double> logits) {
  const auto n = static_cast<int64_t>(tokens.size());
  if (n < 1 || start < 0 || start + n > info_.max_len ||
      static_cast<int64_t>(logits.size()) != info_.vocab_size) {
    return absl::InternalError(absl::StrCat("Prefill of ", n, " tokens at ", start,
                                            " outside the context of ", info_.max_len));
  }
  auto& slot = static_cast<Slot&>(cache);
  try {
    c10::InferenceMode guard;
    at::Tensor ids =
        torch::tensor(at::ArrayRef<int64_t>(tokens.data(), tokens.size()), torch::kLong)
            .reshape({1, n});
    at::Tensor row = pool_.narrow(0, slot.row, 1);
    c10::IValue out = (*prefill_)({std::move(ids), start, row});
    absl::StatusOr<std::pair<at::Tensor, at::Tensor>> checked = CheckStep("prefill", out, 1, row);
    if (!checked.ok()) return checked.status();
    if (!SameElements(checked->second, row)) row.copy_(checked->second);
    CopyLogits(checked->first, 0, logits);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("prefill of ", n, " tokens at position ", start,
                                            " failed: ", TorchMessage(e)));
  }
  return absl::OkStatus();
}

absl::Status TorchScriptEngine::Decode(absl::Span<Cache* const> caches,
                                       absl::Span<const int64_t> tokens,
                                       absl::Span<const int64_t> positions,
                                       absl::Span<double> logits) {
  const auto batch = static_cast<int64_t>(caches.size());
  if (batch == 0) return absl::OkStatus();
  if (tokens.size() != caches.size() || positions.size() != caches.size() ||
      static_cast<int64_t>(logits.size()) != batch * info_.vocab_size) {
    return absl::InternalError("Decode: caches, tokens, positions and logits disagree in size");
  }
  try {
    c10::InferenceMode guard;
    // Gather the batch's rows at the front of the pool, so that the batch is
    // the slice [0, batch): rows already there stay; each one beyond takes
    // the place of a row in front that is not in the batch.
    const int64_t live = live_caches();
    wanted_.assign(static_cast<size_t>(live), 0);
    for (Cache* c : caches) {
      char& w = wanted_[static_cast<Slot*>(c)->row];
      if (w) return absl::InternalError("Decode: the same cache twice in one batch");
      w = 1;
    }
    int64_t hole = 0;
    for (Cache* c : caches) {
      auto* slot = static_cast<Slot*>(c);
      if (slot->row < batch) continue;
      while (wanted_[hole]) ++hole;
      const int64_t from = slot->row;
      SwapRows(hole, from);
      wanted_[hole] = 1;
      wanted_[from] = 0;
    }
    row_tokens_.assign(static_cast<size_t>(batch), 0);
    row_positions_.assign(static_cast<size_t>(batch), 0);
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t row = static_cast<Slot*>(caches[i])->row;
      if (positions[i] < 0 || positions[i] >= info_.max_len) {
        return absl::InternalError(absl::StrCat("Decode at position ", positions[i],
                                                " outside the context of ", info_.max_len));
      }
      row_tokens_[row] = tokens[i];
      row_positions_[row] = positions[i];
    }
    at::Tensor cache = pool_.narrow(0, 0, batch);
    c10::IValue out = (*decode_)({torch::tensor(row_tokens_, torch::kLong),
                                  torch::tensor(row_positions_, torch::kLong), cache});
    absl::StatusOr<std::pair<at::Tensor, at::Tensor>> checked =
        CheckStep("decode", out, batch, cache);
    if (!checked.ok()) return checked.status();
    if (!SameElements(checked->second, cache)) cache.copy_(checked->second);
    // Logits of another floating dtype (half, bfloat16) are converted once
    // for the batch, not row by row.
    const at::ScalarType dtype = checked->first.scalar_type();
    const at::Tensor all = dtype == at::kFloat || dtype == at::kDouble
                               ? checked->first
                               : checked->first.to(at::kDouble);
    const auto vocab = static_cast<size_t>(info_.vocab_size);
    for (int64_t i = 0; i < batch; ++i) {
      CopyLogits(all, static_cast<Slot*>(caches[i])->row,
                 logits.subspan(static_cast<size_t>(i) * vocab, vocab));
    }
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("decode of a batch of ", batch, " failed: ", TorchMessage(e)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<LmEngine>> LoadTorchScriptEngine(const std::string& path,
                                                                const LmEngineOptions& options) {
  return TorchScriptEngine::Load(path, options);
}

}  // namespace sluice
