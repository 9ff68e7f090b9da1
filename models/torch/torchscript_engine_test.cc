// The TorchScript engine on small files written at build time
// (testdata/make_test_models.py): what it checks when loading, and that its
// cache pool keeps every sequence's cache intact while caches come and go.

#include "models/torch/torchscript_engine.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/subprocess.h"

namespace sluice {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string TestModel(const std::string& name) {
  return RunfilePath(absl::StrCat("models/torch/testdata/", name));
}

LmEngineOptions OneThread() {
  LmEngineOptions options;
  options.intra_op_threads = 1;
  return options;
}

std::unique_ptr<LmEngine> MustLoad(const std::string& name, bool optimize = true) {
  LmEngineOptions options = OneThread();
  options.optimize = optimize;
  absl::StatusOr<std::unique_ptr<LmEngine>> engine =
      LoadTorchScriptEngine(TestModel(name), options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? *std::move(engine) : nullptr;
}

absl::Status LoadError(const std::string& name) {
  return LoadTorchScriptEngine(TestModel(name), OneThread()).status();
}

TEST(TorchScriptEngineTest, ReadsTheModelsConstantsAndCacheLayout) {
  std::unique_ptr<LmEngine> engine = MustLoad("tiny_lm.pt");
  ASSERT_NE(engine, nullptr);
  const LmEngineInfo& info = engine->info();
  EXPECT_EQ(info.vocab_size, 257);
  EXPECT_EQ(info.eos_token, 256);
  EXPECT_EQ(info.max_len, 48);
  // [1, layers, keys and values, context, width]
  EXPECT_EQ(info.cache_layout, "[1, 2, 2, 48, 16] float64");
  EXPECT_EQ(info.cache_bytes, 2u * 2 * 48 * 16 * 8);
  EXPECT_EQ(info.logits_dtype, "float64");
  EXPECT_EQ(engine->live_caches(), 0);
}

TEST(TorchScriptEngineTest, MissingFileIsNotFound) {
  const absl::Status status = LoadError("no_such_model.pt");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("no_such_model.pt"), HasSubstr("No such file or directory")));
}

TEST(TorchScriptEngineTest, FileThatIsNotTorchScriptIsRefused) {
  const absl::Status status = LoadError("not_torchscript.pt");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("not_torchscript.pt"), HasSubstr("not a TorchScript file"),
                    HasSubstr("torch.jit.script(module).save(path)")));
}

TEST(TorchScriptEngineTest, MissingMethodIsNamedWithItsSignature) {
  const absl::Status status = LoadError("no_decode.pt");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("no_decode.pt"),
                    HasSubstr("lacks the method decode(tokens: Tensor [B] int64, positions: "
                              "Tensor [B] int64, cache: Tensor [B, ...]) -> (Tensor [B, V], "
                              "Tensor [B, ...])"),
                    HasSubstr("@torch.jit.export")));
}

TEST(TorchScriptEngineTest, WrongLogitsShapeIsRefused) {
  const absl::Status status = LoadError("bad_logits.pt");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("prefill returned logits [1, 258] float32; expected [1, 257] (batch, "
                        "vocab_size())"));
}

TEST(TorchScriptEngineTest, WrongCacheShapeIsRefused) {
  const absl::Status status = LoadError("bad_cache.pt");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("decode returned a cache [2, 1, 2, 48, 16] float32; expected "
                        "[2, 2, 2, 48, 16] float32"));
}

TEST(TorchScriptEngineTest, VocabularyWithoutTheBytesIsRefused) {
  const absl::Status status = LoadError("small_vocab.pt");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("vocab_size() is 100; expected at least 256"));
}

// Logits of `tokens` run one at a time through a cache of its own (prefill
// of the first, then decode), for comparisons.
std::vector<std::vector<double>> RunAlone(LmEngine& engine, const std::vector<int64_t>& tokens) {
  const size_t vocab = static_cast<size_t>(engine.info().vocab_size);
  std::vector<std::vector<double>> out;
  absl::StatusOr<std::unique_ptr<LmEngine::Cache>> cache = engine.NewCache();
  EXPECT_TRUE(cache.ok());
  std::vector<double> logits(vocab);
  EXPECT_TRUE(engine.Prefill(**cache, {tokens[0]}, 0, absl::MakeSpan(logits)).ok());
  out.push_back(logits);
  for (size_t i = 1; i < tokens.size(); ++i) {
    LmEngine::Cache* c = cache->get();
    const int64_t position = static_cast<int64_t>(i);
    EXPECT_TRUE(
        engine.Decode({&c, 1}, {&tokens[i], 1}, {&position, 1}, absl::MakeSpan(logits)).ok());
    out.push_back(logits);
  }
  return out;
}

void ExpectNear(const std::vector<double>& a, absl::Span<const double> b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-9) << what << " id " << i;
}

// Three sequences decoded together while caches are created and destroyed
// around them (so that the pool grows, shrinks and moves rows) give the
// logits each gives alone; a chunked prefill gives those of token-by-token.
void CheckPoolKeepsSequencesApart(const std::string& model, bool optimize = true) {
  std::unique_ptr<LmEngine> engine = MustLoad(model, optimize);
  ASSERT_NE(engine, nullptr);
  const size_t vocab = static_cast<size_t>(engine->info().vocab_size);
  const std::vector<std::vector<int64_t>> texts = {
      {'T', 'h', 'e', ' ', 'r', 'i', 'v', 'e', 'r'},
      {256, 'A', ' ', 'm', 'i', 'l', 'l', ' ', 's', 't'},
      {'s', 'l', 'u', 'i', 'c', 'e', ' ', 'g', 'a', 't'},
  };
  std::vector<std::vector<std::vector<double>>> alone;
  for (const auto& t : texts) alone.push_back(RunAlone(*engine, t));
  ASSERT_EQ(engine->live_caches(), 0);

  // Sequence 0 and 1 prefill two tokens in one chunk; sequence 2 one token.
  std::vector<std::unique_ptr<LmEngine::Cache>> caches;
  std::vector<std::unique_ptr<LmEngine::Cache>> others;
  std::vector<double> logits(vocab);
  for (int s = 0; s < 3; ++s) {
    absl::StatusOr<std::unique_ptr<LmEngine::Cache>> c = engine->NewCache();
    ASSERT_TRUE(c.ok());
    caches.push_back(*std::move(c));
    // Another cache between each, destroyed later: rows move.
    absl::StatusOr<std::unique_ptr<LmEngine::Cache>> other = engine->NewCache();
    ASSERT_TRUE(other.ok());
    others.push_back(*std::move(other));
  }
  EXPECT_EQ(engine->live_caches(), 6);
  EXPECT_EQ(engine->live_cache_bytes(), 6 * engine->info().cache_bytes);
  int64_t position[3];
  for (int s = 0; s < 3; ++s) {
    const size_t n = s < 2 ? 2 : 1;
    ASSERT_TRUE(engine
                    ->Prefill(*caches[s], absl::MakeConstSpan(texts[s]).subspan(0, n), 0,
                              absl::MakeSpan(logits))
                    .ok());
    ExpectNear(alone[s][n - 1], logits, absl::StrCat(model, " prefill ", s));
    position[s] = static_cast<int64_t>(n);
  }
  others[1].reset();  // a hole in the middle of the pool
  for (int step = 0; step < 7; ++step) {
    if (step == 2) others.clear();  // the pool shrinks to the three
    if (step == 4) {
      // One more joins (and is dropped before it is ever decoded).
      absl::StatusOr<std::unique_ptr<LmEngine::Cache>> late = engine->NewCache();
      ASSERT_TRUE(late.ok());
      others.push_back(*std::move(late));
    }
    // The batch in another order at every step.
    std::vector<int> order = {step % 3, (step + 1) % 3, (step + 2) % 3};
    std::vector<LmEngine::Cache*> batch;
    std::vector<int64_t> tokens, positions;
    for (int s : order) {
      batch.push_back(caches[s].get());
      tokens.push_back(texts[s][position[s]]);
      positions.push_back(position[s]);
    }
    std::vector<double> all(3 * vocab);
    ASSERT_TRUE(engine->Decode(batch, tokens, positions, absl::MakeSpan(all)).ok());
    for (int k = 0; k < 3; ++k) {
      const int s = order[k];
      ExpectNear(alone[s][position[s]], absl::MakeConstSpan(all).subspan(k * vocab, vocab),
                 absl::StrCat(model, " step ", step, " sequence ", s));
      ++position[s];
    }
  }
  others.clear();
  caches.clear();
  EXPECT_EQ(engine->live_caches(), 0);
  EXPECT_EQ(engine->live_cache_bytes(), 0u);
}

// tinylm's architecture has a forward method: the engine freezes it for
// inference; as loaded, it gives the same results.
TEST(TorchScriptEngineTest, TransformerBatchesKeepSequencesApart) {
  CheckPoolKeepsSequencesApart("tiny_lm.pt");
  CheckPoolKeepsSequencesApart("tiny_lm.pt", /*optimize=*/false);
}

// The GRU returns a new state each call (not the cache it was given): the
// engine copies it back into the sequence's row.
TEST(TorchScriptEngineTest, RecurrentModelBatchesKeepSequencesApart) {
  CheckPoolKeepsSequencesApart("tiny_gru.pt");
}

}  // namespace
}  // namespace sluice
