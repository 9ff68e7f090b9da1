#include "models/charlm/charlm.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "models/rng.h"

namespace sluice {
namespace {

// Pads the start of every document; never appears in text (it is stripped).
constexpr char kStart = '\x02';

std::vector<std::string> Paragraphs(absl::string_view corpus) {
  std::vector<std::string> out;
  std::string current;
  for (absl::string_view line : absl::StrSplit(corpus, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) {
      if (!current.empty()) out.push_back(std::move(current));
      current.clear();
      continue;
    }
    if (!current.empty()) current.push_back(' ');
    for (char c : line) {
      if (c != kStart) current.push_back(c);
    }
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NgramTable>> NgramTable::Train(absl::string_view corpus, int order) {
  if (order < 1 || order > 12) {
    return absl::InvalidArgumentError(absl::StrCat("charlm order must be 1..12, got ", order));
  }
  const std::vector<std::string> docs = Paragraphs(corpus);
  if (docs.empty()) return absl::InvalidArgumentError("charlm corpus has no text");

  std::vector<absl::flat_hash_map<std::string, std::map<int, uint32_t>>> counts(order + 1);
  for (const std::string& doc : docs) {
    const std::string padded = std::string(order, kStart) + doc;
    for (size_t i = order; i <= padded.size(); ++i) {
      const int symbol = i < padded.size() ? static_cast<unsigned char>(padded[i]) : kEndOfText;
      for (int n = 0; n <= order; ++n) {
        ++counts[n][padded.substr(i - n, n)][symbol];
      }
    }
  }
  auto table = absl::WrapUnique(new NgramTable(order));
  for (int n = 0; n <= order; ++n) {
    for (auto& [context, by_symbol] : counts[n]) {
      std::vector<Count>& out = table->tables_[n][context];
      for (const auto& [symbol, count] : by_symbol) out.push_back({symbol, count});
    }
  }
  return table;
}

std::string NgramTable::StartContext(absl::string_view prompt) const {
  std::string context(order_, kStart);
  for (char c : prompt) {
    if (c != kStart) context.push_back(c);
  }
  return context.substr(context.size() - order_);
}

const std::vector<NgramTable::Count>& NgramTable::Candidates(absl::string_view context) const {
  // Longest suffix of the context seen in training; length 0 always is.
  for (int n = std::min<int>(order_, context.size()); n > 0; --n) {
    auto it = tables_[n].find(context.substr(context.size() - n));
    if (it != tables_[n].end()) return it->second;
  }
  return tables_[0].begin()->second;
}

int NgramTable::Sample(absl::string_view context, double temperature, double uniform) const {
  const std::vector<Count>& candidates = Candidates(context);
  const Count* best = &candidates.front();  // the likeliest, lowest first among ties
  for (const Count& c : candidates) {
    if (c.count > best->count) best = &c;
  }
  if (temperature <= 0) return best->symbol;
  // p(symbol) ∝ count^(1/temperature), computed as (count/max)^(1/temperature)
  // so every weight stays in [0, 1] and the likeliest is 1: the raw power
  // overflows to infinity at low temperatures (300^(1/0.005)), which turned
  // the draw into NaN and picked the last candidate instead of the likeliest.
  const uint32_t max_count = best->count;
  std::vector<double> weights(candidates.size());
  double total = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    weights[i] = std::pow(static_cast<double>(candidates[i].count) / max_count, 1.0 / temperature);
    total += weights[i];
  }
  double target = uniform * total;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (target < weights[i]) return candidates[i].symbol;
    target -= weights[i];
  }
  return candidates.back().symbol;
}

std::string CharLmModel::description() const {
  return absl::StrCat("Character-level ", order_,
                      "-gram language model trained at start-up; continues the input text.");
}

const ParameterSchema& CharLmModel::parameters() const {
  static const ParameterSchema* const kSchema = new ParameterSchema({
      ParameterSpec::Int64("max_tokens", 128, 1, 4096, "characters to generate at most"),
      ParameterSpec::Double("temperature", 0.8, 0.0, 5.0,
                            "sampling temperature; 0 always picks the likeliest character"),
      ParameterSpec::Int64("seed", 0, std::numeric_limits<int64_t>::min(),
                           std::numeric_limits<int64_t>::max(),
                           "random seed; the same seed gives the same text (unset: random)"),
  });
  return *kSchema;
}

absl::Status CharLmModel::Setup() {
  absl::StatusOr<std::unique_ptr<NgramTable>> table = NgramTable::Train(corpus_, order_);
  if (!table.ok()) return table.status();
  table_ = *std::move(table);
  corpus_.clear();
  corpus_.shrink_to_fit();
  return absl::OkStatus();
}

absl::StatusOr<CharLmInput> CharLmModel::Decode(const Request& request) const {
  const ParameterValues& p = request.params();
  CharLmInput input;
  input.context = table_->StartContext(request.input());
  input.max_tokens = p.GetInt64("max_tokens");
  input.temperature = p.GetDouble("temperature");
  input.seed = SeedFrom(p);
  return input;
}

absl::StatusOr<std::unique_ptr<Generator<char>>> CharLmModel::Predict(
    CharLmInput input, const CancellationToken& /*cancel*/) {
  const NgramTable* table = table_.get();
  SplitMix64 rng(input.seed);
  return MakeGenerator<char>(
      [table, input = std::move(input), rng, emitted = int64_t{0}]() mutable {
        if (emitted >= input.max_tokens) return Step<char>::Done(FinishReason::kLength);
        const int symbol = table->Sample(input.context, input.temperature, rng.Uniform());
        if (symbol == NgramTable::kEndOfText) return Step<char>::Done(FinishReason::kStop);
        const char c = static_cast<char>(symbol);
        input.context.erase(0, 1);
        input.context.push_back(c);
        ++emitted;
        return Step<char>::Chunk(c);
      });
}

}  // namespace sluice
