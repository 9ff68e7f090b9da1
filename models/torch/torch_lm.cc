#include "models/torch/torch_lm.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "models/rng.h"

namespace sluice {
namespace {

// Stop strings come as up to four string parameters: a list in a protocol
// of scalar parameters, each spelled out (no separator to escape).
constexpr const char* kStopParams[] = {"stop", "stop2", "stop3", "stop4"};
constexpr size_t kMaxStopBytes = 64;

ParameterSchema MakeSchema() {
  std::vector<ParameterSpec> specs = {
      ParameterSpec::Int64("max_tokens", 128, 1, 1'000'000,
                           "tokens (bytes) to generate at most; generation also ends when the "
                           "model's context is full"),
      ParameterSpec::Double("temperature", 0.8, 0.0, 5.0,
                            "sampling temperature; 0 always picks the likeliest token"),
      ParameterSpec::Int64("top_k", 0, 0, 1'000'000,
                           "sample among the k likeliest tokens only; 0 keeps all"),
      ParameterSpec::Double("top_p", 1.0, 0.0, 1.0,
                            "sample among the likeliest tokens whose probabilities add up to "
                            "top_p (nucleus sampling); must be above 0; 1 keeps all"),
      ParameterSpec::Int64("seed", 0, std::numeric_limits<int64_t>::min(),
                           std::numeric_limits<int64_t>::max(),
                           "random seed; the same seed gives the same text, batched or not "
                           "(unset: random)"),
  };
  for (const char* name : kStopParams) {
    specs.push_back(ParameterSpec::String(
        name, "", kMaxStopBytes,
        "a string that ends the output (not sent); stop, stop2, stop3 and stop4 give up to four; "
        "empty: none"));
  }
  return ParameterSchema(std::move(specs));
}

}  // namespace

// --- Stats -------------------------------------------------------------------------

std::vector<std::string> TorchLanguageModel::Stats::last_decode_batch() const {
  MutexLock lock(&mu_);
  return last_decode_batch_;
}

// --- The model -----------------------------------------------------------------------

TorchLanguageModel::TorchLanguageModel(TorchLmOptions options, LmEngineLoader loader)
    : options_(std::move(options)), loader_(std::move(loader)), schema_(MakeSchema()) {}

TorchLanguageModel::~TorchLanguageModel() = default;

std::string TorchLanguageModel::description() const {
  if (engine_ == nullptr) return absl::StrCat("TorchScript language model ", options_.path);
  const LmEngineInfo& i = engine_->info();
  return absl::StrCat("TorchScript language model ", options_.path, ": byte-level, ", i.vocab_size,
                      " tokens, context ", i.max_len,
                      "; continues the input text, batched token by token");
}

absl::Status TorchLanguageModel::Setup() {
  if (options_.prefill_chunk < 1) {
    return absl::InvalidArgumentError(absl::StrCat("TorchScript model ", options_.path,
                                                   ": prefill_chunk must be at least 1, got ",
                                                   options_.prefill_chunk));
  }
  absl::StatusOr<std::unique_ptr<LmEngine>> engine = loader_(options_.path, options_.engine);
  if (!engine.ok()) return engine.status();
  engine_ = *std::move(engine);
  return absl::OkStatus();
}

absl::StatusOr<LmPrompt> TorchLanguageModel::Decode(const Request& request) const {
  const std::string& model = request.proto().model();
  const LmEngineInfo& info = engine_->info();
  const ParameterValues& p = request.params();
  LmPrompt prompt;
  prompt.request_id = std::string(request.request_id());
  const absl::string_view input = request.input();
  if (static_cast<int64_t>(input.size()) > info.max_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("the input of model ", model, " is ", input.size(),
                     " bytes (one token each), longer than its context of ", info.max_len,
                     " tokens; send at most ", info.max_len, " bytes"));
  }
  if (input.empty()) {
    if (info.eos_token < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model ", model, " needs some input text (it has no end-of-text token to start from)"));
    }
    prompt.tokens.push_back(info.eos_token);  // a text starts after an end of text
  } else {
    prompt.tokens.reserve(input.size());
    for (char c : input) prompt.tokens.push_back(static_cast<unsigned char>(c));
  }
  prompt.input_tokens = input.size();
  prompt.max_tokens = p.GetInt64("max_tokens");
  prompt.sampling.temperature = p.GetDouble("temperature");
  prompt.sampling.top_k = p.GetInt64("top_k");
  prompt.sampling.top_p = p.GetDouble("top_p");
  if (prompt.sampling.top_p <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "parameter top_p of model ", model,
        " must be above 0 and at most 1 (1 keeps every token), got ", prompt.sampling.top_p));
  }
  prompt.seed = SeedFrom(p);
  for (const char* name : kStopParams) {
    const std::string& stop = p.GetString(name);
    if (!stop.empty()) prompt.stops.push_back(stop);
  }
  return prompt;
}

absl::StatusOr<std::unique_ptr<LmSequence>> TorchLanguageModel::Start(LmPrompt prompt) {
  absl::StatusOr<std::unique_ptr<LmEngine::Cache>> cache = engine_->NewCache();
  if (!cache.ok()) return cache.status();
  const LmEngineInfo& info = engine_->info();
  Sampler sampler(prompt.sampling, prompt.seed, /*allowed=*/256, /*also_allowed=*/info.eos_token);
  auto sequence =
      std::make_unique<LmSequence>(std::move(prompt), *std::move(cache), std::move(sampler));
  return sequence;
}

void TorchLanguageModel::Next(LmSequence& s, absl::Span<const double> logits,
                              SequenceStep<std::string>& out) const {
  const LmEngineInfo& info = engine_->info();
  absl::StatusOr<int64_t> token = s.sampler.Sample(logits);
  if (!token.ok()) {
    out.error = token.status();
    return;
  }
  ++s.generated;
  std::string chunk;
  if (*token == info.eos_token) {
    chunk = s.text.Flush();
    out.finish = FinishReason::kStop;
  } else {
    chunk = s.text.Append(std::string(1, static_cast<char>(*token)));
    if (s.text.stopped()) {
      out.finish = FinishReason::kStop;
    } else if (s.generated >= s.prompt.max_tokens || s.cached() >= info.max_len) {
      // max_tokens, or the context is full: the token just sampled has no
      // position left to be decoded at.
      chunk += s.text.Flush();
      out.finish = FinishReason::kLength;
    } else {
      s.next_token = *token;
    }
  }
  if (!chunk.empty()) out.chunk = std::move(chunk);
  if (out.finish.has_value()) {
    out.usage = TokenUsage{s.prompt.input_tokens, static_cast<uint64_t>(s.generated)};
  }
}

absl::Status TorchLanguageModel::Step(absl::Span<LmSequence* const> batch,
                                      absl::Span<SequenceStep<std::string>> out,
                                      const CancellationToken& cancel) {
  const auto vocab = static_cast<size_t>(engine_->info().vocab_size);
  decoding_.clear();
  // Sequences still in their prompt run one chunk of it each: a caller who
  // leaves is out of the batch at the next step, one chunk later at most.
  for (size_t i = 0; i < batch.size(); ++i) {
    LmSequence& s = *batch[i];
    const auto prompt = static_cast<int64_t>(s.prompt.tokens.size());
    if (s.prefilled == prompt) {
      decoding_.push_back(i);
      continue;
    }
    if (cancel.IsCancelled()) return absl::OkStatus();  // nobody in this step is wanted
    const int64_t n = std::min(options_.prefill_chunk, prompt - s.prefilled);
    logits_.resize(vocab);
    absl::Status prefilled =
        engine_->Prefill(*s.cache, absl::MakeConstSpan(s.prompt.tokens).subspan(s.prefilled, n),
                         s.prefilled, absl::MakeSpan(logits_));
    stats_.prefill_chunks_.fetch_add(1, std::memory_order_relaxed);
    ++s.prefill_steps;
    if (!prefilled.ok()) {
      out[i].error = prefilled;
      continue;
    }
    s.prefilled += n;
    if (s.prefilled == prompt) Next(s, logits_, out[i]);  // the first token
  }
  if (decoding_.empty()) return absl::OkStatus();

  // The others: one token each, in one call.
  caches_.clear();
  tokens_.clear();
  positions_.clear();
  for (size_t i : decoding_) {
    LmSequence& s = *batch[i];
    caches_.push_back(s.cache.get());
    tokens_.push_back(s.next_token);
    positions_.push_back(s.cached());
  }
  logits_.resize(decoding_.size() * vocab);
  absl::Status decoded = engine_->Decode(caches_, tokens_, positions_, absl::MakeSpan(logits_));
  if (!decoded.ok()) return decoded;
  {
    // Assigned in place: the strings' storage is reused from step to step.
    MutexLock lock(&stats_.mu_);
    stats_.last_decode_batch_.resize(decoding_.size());
    for (size_t k = 0; k < decoding_.size(); ++k) {
      stats_.last_decode_batch_[k].assign(batch[decoding_[k]]->prompt.request_id);
    }
  }
  for (size_t k = 0; k < decoding_.size(); ++k) {
    LmSequence& s = *batch[decoding_[k]];
    ++s.decode_steps;
    Next(s, absl::MakeConstSpan(logits_).subspan(k * vocab, vocab), out[decoding_[k]]);
  }
  stats_.decode_steps_.fetch_add(1);
  return absl::OkStatus();
}

void TorchLanguageModel::Release(std::unique_ptr<LmSequence> sequence) {
  Released released;
  released.request_id = sequence->prompt.request_id;
  released.prefilled = sequence->prefilled;
  released.prefill_steps = sequence->prefill_steps;
  released.decode_steps = sequence->decode_steps;
  sequence.reset();  // frees its cache
  if (on_release_) on_release_(released);
}

uint64_t TorchLanguageModel::StateBytes(const LmSequence& sequence) const {
  return engine_->info().cache_bytes + sizeof(sequence) +
         sequence.prompt.tokens.capacity() * sizeof(int64_t);
}

// --- Registration ------------------------------------------------------------------

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseTorchModels(
    absl::string_view spec) {
  std::vector<std::pair<std::string, std::string>> models;
  for (absl::string_view entry : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    // With no '=', the whole entry is the name and the path is empty.
    const std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(entry, absl::MaxSplits('=', 1));
    const absl::string_view name = absl::StripAsciiWhitespace(kv.first);
    const absl::string_view path = absl::StripAsciiWhitespace(kv.second);
    if (name.empty() || path.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--torch_models entry \"", entry,
                       "\" must look like NAME=PATH (a model name and its TorchScript file), e.g. "
                       "tinylm=models/tinylm/tinylm.pt"));
    }
    models.emplace_back(std::string(name), std::string(path));
  }
  return models;
}

absl::Status RegisterTorchModels(absl::string_view spec, const TorchLmOptions& defaults,
                                 const LmEngineLoader& loader, ModelRegistry* registry) {
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> models = ParseTorchModels(spec);
  if (!models.ok()) return models.status();
  for (const auto& [name, path] : *models) {
    TorchLmOptions options = defaults;
    options.path = path;
    if (absl::Status s =
            registry->Register(name, std::make_unique<TorchLanguageModel>(options, loader));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace sluice
