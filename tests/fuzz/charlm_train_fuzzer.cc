// Fuzzes charlm's NgramTable::Train on an operator-supplied corpus (the
// --charlm_corpus file), then samples from the table it built.
//
// Input: one byte choosing the order (0..13; 0 and 13 are invalid), then the
// corpus (at most kMaxCorpus bytes are used, to bound the work per input).
//
// Invariants:
//   - Train fails exactly when the order is outside 1..12 or the corpus has
//     no text, with INVALID_ARGUMENT; otherwise it succeeds.
//   - StartContext is always order() bytes long.
//   - Sample returns the end-of-text symbol, a byte of the corpus' text or
//     the space that joins lines (never '\n', never the start pad), at every temperature in 0..5
//     (the temperature parameter's range).
//   - Temperature is continuous at 0: with the smallest positive temperature
//     and uniform 0, Sample picks what temperature 0 picks (the likeliest
//     symbol, lowest first among ties).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "models/charlm/charlm.h"
#include "tests/fuzz/fuzz_util.h"

namespace sluice {
namespace {

constexpr size_t kMaxCorpus = 8192;
constexpr char kStartPad = '\x02';

// HasText: whether some line has a character other than whitespace and the
// start pad (what Train needs to make at least one document).
bool HasText(absl::string_view corpus) {
  for (absl::string_view line : absl::StrSplit(corpus, '\n')) {
    for (char c : absl::StripAsciiWhitespace(line)) {
      if (c != kStartPad) return true;
    }
  }
  return false;
}

}  // namespace
}  // namespace sluice

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sluice;  // NOLINT: a test driver
  fuzz::FuzzInput in(data, size);
  const int order = in.Byte() % 14;
  absl::string_view corpus = in.Rest();
  if (corpus.size() > kMaxCorpus) corpus = corpus.substr(0, kMaxCorpus);

  auto table = NgramTable::Train(corpus, order);
  if (order < 1 || order > 12) {
    fuzz::ExpectRejection(table.status(), {"order"}, corpus);
    return 0;
  }
  if (!HasText(corpus)) {
    fuzz::ExpectRejection(table.status(), {"no text"}, corpus);
    return 0;
  }
  CHECK(table.ok()) << table.status() << " for \"" << absl::CHexEscape(corpus) << "\"";
  CHECK_EQ((*table)->order(), order);

  // Contexts: the empty prompt, a few prompts cut from the corpus, and the
  // contexts met while generating greedily.
  std::vector<std::string> contexts = {(*table)->StartContext("")};
  for (size_t at : {size_t{0}, corpus.size() / 3, corpus.size() / 2}) {
    contexts.push_back((*table)->StartContext(corpus.substr(at, 2 * order)));
  }
  std::string context = contexts[0];
  for (int i = 0; i < 32; ++i) {
    const int symbol = (*table)->Sample(context, 0.0, 0.5);
    if (symbol == NgramTable::kEndOfText) break;
    context = context.substr(1) + static_cast<char>(symbol);
    contexts.push_back(context);
  }

  const double kTemperatures[] = {0.0, std::numeric_limits<double>::denorm_min(), 1e-3, 0.7, 1.0,
                                  5.0};
  const double kUniforms[] = {0.0, 0.3, 0.5, 0.999999};
  for (const std::string& ctx : contexts) {
    CHECK_EQ(ctx.size(), static_cast<size_t>(order)) << absl::CHexEscape(ctx);
    for (double t : kTemperatures) {
      for (double u : kUniforms) {
        const int symbol = (*table)->Sample(ctx, t, u);
        CHECK(symbol >= 0 && symbol <= NgramTable::kEndOfText) << symbol;
        if (symbol == NgramTable::kEndOfText) continue;
        const char c = static_cast<char>(symbol);
        // Lines of a paragraph are joined by a space.
        CHECK(c != '\n' && c != kStartPad &&
              (c == ' ' || corpus.find(c) != absl::string_view::npos))
            << "sampled " << symbol << " at temperature " << t << " after \""
            << absl::CHexEscape(ctx) << "\"";
      }
    }
    const int greedy = (*table)->Sample(ctx, 0.0, 0.5);
    const int nearly = (*table)->Sample(ctx, std::numeric_limits<double>::denorm_min(), 0.0);
    CHECK_EQ(nearly, greedy) << "after \"" << absl::CHexEscape(ctx)
                             << "\": the smallest positive temperature does not pick the "
                                "likeliest symbol";
  }
  return 0;
}
