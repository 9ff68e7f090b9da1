#ifndef SLUICE_MODELS_CHARLM_CHARLM_H_
#define SLUICE_MODELS_CHARLM_CHARLM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/model.h"

namespace sluice {

// NgramTable: a character-level n-gram language model of order k, trained by
// counting. It predicts the next byte of text from the k bytes before it,
// backing off to shorter contexts never seen in training. Paragraphs of the
// corpus (separated by blank lines) are documents: each starts from an empty
// context and ends with an end-of-text symbol, so generation can stop on its own.
// Immutable after Train; safe to share between threads.
class NgramTable {
 public:
  static constexpr int kEndOfText = 256;  // the symbol after the last byte of a paragraph

  // Train: counts every context of length 0..order in `corpus`.
  // INVALID_ARGUMENT if the corpus has no text or order is not 1..12.
  static absl::StatusOr<std::unique_ptr<NgramTable>> Train(absl::string_view corpus, int order);

  int order() const { return order_; }

  // Sample: the next symbol (a byte 0..255, or kEndOfText) after `context`
  // (the text so far; only its last order() bytes matter). `temperature` 0
  // picks the most frequent symbol; higher values flatten the distribution.
  // `uniform` is a random number in [0, 1).
  int Sample(absl::string_view context, double temperature, double uniform) const;

  // StartContext: the context a generation starts from, given a prompt.
  std::string StartContext(absl::string_view prompt) const;

 private:
  struct Count {
    int symbol;
    uint32_t count;
  };
  using Table = absl::flat_hash_map<std::string, std::vector<Count>>;

  explicit NgramTable(int order) : order_(order), tables_(order + 1) {}
  const std::vector<Count>& Candidates(absl::string_view context) const;

  int order_;
  std::vector<Table> tables_;  // tables_[n]: contexts of length n
};

struct CharLmInput {
  std::string context;
  int64_t max_tokens = 0;
  double temperature = 0;
  uint64_t seed = 0;
};

// CharLmModel: serves an NgramTable. Each chunk is one generated character.
// Output is deterministic for a given prompt, parameters and seed.
class CharLmModel final : public Model<CharLmInput, char> {
 public:
  // corpus: the training text; order: the n-gram order.
  CharLmModel(std::string corpus, int order) : corpus_(std::move(corpus)), order_(order) {}

  std::string description() const override;
  const ParameterSchema& parameters() const override;
  absl::Status Setup() override;
  absl::StatusOr<CharLmInput> Decode(const Request& request) const override;
  absl::StatusOr<std::unique_ptr<Generator<char>>> Predict(
      CharLmInput input, const CancellationToken& cancel) override;
  absl::StatusOr<std::string> Encode(char c) const override { return std::string(1, c); }

 private:
  std::string corpus_;
  int order_;
  std::unique_ptr<NgramTable> table_;
};

// DefaultCharLmCorpus: the small corpus sluice ships (models/charlm/corpus.txt),
// compiled into the binary.
absl::string_view DefaultCharLmCorpus();

}  // namespace sluice

#endif  // SLUICE_MODELS_CHARLM_CHARLM_H_
