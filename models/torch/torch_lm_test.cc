// TorchLanguageModel on small TorchScript files written at build time
// (testdata/make_test_models.py), driven by the real BatchScheduler one step
// boundary at a time (RunStep) with fake sinks: batched against alone, seeds,
// chunked prefill and leaving during it, the cache freed at a cancel, stop
// strings, finish reasons, usage and bad parameters.

#include "models/torch/torch_lm.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "handlers/batch_scheduler.h"
#include "handlers/call_testing.h"
#include "models/model_testing.h"
#include "models/torch/output_text.h"
#include "models/torch/torchscript_engine.h"
#include "tools/subprocess.h"

namespace sluice {
namespace {

using ::sluice::testing::DoubleParam;
using ::sluice::testing::FakeClock;
using ::sluice::testing::FakeStreamSink;
using ::sluice::testing::IntParam;
using ::sluice::testing::MakeRequest;
using ::sluice::testing::ManualTimers;
using ::sluice::testing::StringParam;
using ::sluice::testing::SummaryCollector;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

using Params = std::vector<std::pair<std::string, v1::Parameter>>;

constexpr absl::Duration kWait = absl::Seconds(30);
// What tests/make_test_models.py's fixed_text.pt continues, byte after byte.
constexpr char kFixedText[] =
    "Once upon a time, a caf\xC3\xA9 \xE2\x86\x92 a na\xC3\xAFve fox ran off. The end.";

// One call's output as its client saw it.
struct Outcome {
  std::string output;
  std::vector<std::string> chunks;
  absl::Status status;
  v1::PredictChunk last;  // the final message
};

class TorchLmTest : public ::testing::Test {
 protected:
  void TearDown() override { EndAll(); }

  // Load: the model on `file` (in testdata), with `prefill_chunk`.
  void Load(const std::string& file, int64_t prefill_chunk = 64) {
    TorchLmOptions options;
    options.path = RunfilePath(absl::StrCat("models/torch/testdata/", file));
    options.prefill_chunk = prefill_chunk;
    options.engine.intra_op_threads = 1;
    model_ = std::make_unique<TorchLanguageModel>(options, LoadTorchScriptEngine);
    const absl::Status setup = model_->Setup();
    ASSERT_TRUE(setup.ok()) << setup;
    model_->set_on_release(
        [this](const TorchLanguageModel::Released& r) { released_[r.request_id] = r; });
    NewScheduler(8);
  }

  // NewScheduler: a scheduler of `max_batch`, stepped by the test (RunStep).
  void NewScheduler(int max_batch) {
    EndAll();
    BatchOptions options;
    options.limits = model_->limits();
    options.limits.max_batch = max_batch;
    options.limits.max_sequences = max_batch;
    scheduler_ = std::make_unique<BatchScheduler>("lm", model_.get(), options, &clock_);
  }

  // Stream: admits a stream `id` with `input` and `params`.
  std::shared_ptr<StreamCall> Stream(const std::string& id, const std::string& input,
                                     Params params = {}) {
    v1::PredictRequest request = MakeRequest("lm", input, std::move(params));
    request.set_request_id(id);
    absl::StatusOr<std::unique_ptr<BatchedModelBase::Sequence>> sequence =
        model_->PrepareSequence("lm", request);
    EXPECT_TRUE(sequence.ok()) << sequence.status();
    if (!sequence.ok()) return nullptr;
    CallOptions options;
    options.model = "lm";
    options.request_id = id;
    options.input_bytes = input.size();
    options.stream_buffer_chunks = 1000;  // never full: no sitting out here
    options.write_stall_timeout = absl::Hours(1);
    sinks_[id] = std::make_unique<FakeStreamSink>(/*auto_complete=*/true);
    auto call =
        StreamCall::Create(options, &timers_, &stats_, sinks_[id].get(), summaries_.callback());
    sinks_[id]->set_call(call);
    EXPECT_TRUE(scheduler_->Admit(call, *std::move(sequence)).ok());
    return call;
  }

  // RunAll: steps until no sequence is left (bounded).
  void RunAll() {
    for (int i = 0; i < 10'000 && scheduler_->RunStep(); ++i) {
    }
  }

  // Result: what stream `id`'s client received, once its call finished.
  Outcome Result(const std::string& id) {
    Outcome out;
    FakeStreamSink& sink = *sinks_.at(id);
    EXPECT_TRUE(sink.WaitForFinish(kWait)) << id;
    out.status = sink.finish_status().value_or(absl::UnknownError("no finish"));
    std::vector<v1::PredictChunk> written = sink.written();
    for (const v1::PredictChunk& c : written) {
      if (!c.output().empty()) out.chunks.push_back(c.output());
      out.output += c.output();
    }
    if (!written.empty()) out.last = written.back();
    return out;
  }

  // RunEach: `inputs` with `params`, each alone (batches of one) or all in
  // one batch; the outputs in order.
  std::vector<Outcome> RunEach(const std::vector<std::pair<std::string, Params>>& inputs,
                               bool batched) {
    std::vector<Outcome> outcomes;
    const std::string prefix = batched ? "together-" : "alone-";
    if (batched) {
      NewScheduler(static_cast<int>(inputs.size()));
      for (size_t i = 0; i < inputs.size(); ++i) {
        Stream(absl::StrCat(prefix, i), inputs[i].first, inputs[i].second);
      }
      RunAll();
    }
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!batched) {
        NewScheduler(1);
        Stream(absl::StrCat(prefix, i), inputs[i].first, inputs[i].second);
        RunAll();
      }
      outcomes.push_back(Result(absl::StrCat(prefix, i)));
      EXPECT_TRUE(outcomes.back().status.ok()) << i << ": " << outcomes.back().status;
    }
    return outcomes;
  }

  absl::Status PrepareError(const std::string& input, Params params) {
    return model_->PrepareSequence("lm", MakeRequest("lm", input, std::move(params))).status();
  }

  void EndAll() {
    if (scheduler_ == nullptr) return;
    scheduler_->CancelAll(EndCause::kShutdown);
    while (scheduler_->RunStep()) {
    }
    EXPECT_TRUE(scheduler_->WaitIdle(absl::Now() + kWait));
    scheduler_.reset();
  }

  std::unique_ptr<TorchLanguageModel> model_;
  std::map<std::string, TorchLanguageModel::Released> released_;  // loop thread = test thread
  FakeClock clock_;
  ManualTimers timers_;
  ModelStats stats_{"lm"};
  SummaryCollector summaries_;
  std::map<std::string, std::unique_ptr<FakeStreamSink>> sinks_;  // outlive the calls
  std::unique_ptr<BatchScheduler> scheduler_;
};

// Prompts of different lengths (one empty), so the batch mixes prefill and
// decode and its sequences sit at different positions.
std::vector<std::pair<std::string, Params>> Prompts(Params params) {
  std::vector<std::pair<std::string, Params>> prompts;
  for (const char* text : {"The river", "", "A mill by the water wheel", "x", "sluice gates"}) {
    prompts.emplace_back(text, params);
  }
  return prompts;
}

class BatchedEqualsAloneTest : public TorchLmTest,
                               public ::testing::WithParamInterface<const char*> {};

TEST_P(BatchedEqualsAloneTest, GreedyOutputOfABatchIsEachSequenceRunAlone) {
  Load(GetParam());
  const auto prompts = Prompts({{"temperature", DoubleParam(0)}, {"max_tokens", IntParam(16)}});
  const std::vector<Outcome> alone = RunEach(prompts, /*batched=*/false);
  const int64_t decode_steps_alone = model_->stats().decode_steps();
  const std::vector<Outcome> together = RunEach(prompts, /*batched=*/true);
  ASSERT_EQ(alone.size(), together.size());
  for (size_t i = 0; i < alone.size(); ++i) {
    EXPECT_EQ(together[i].output, alone[i].output) << "prompt " << i;
    EXPECT_EQ(together[i].last.finish_reason(), alone[i].last.finish_reason()) << i;
    EXPECT_EQ(together[i].last.usage().output_tokens(), alone[i].last.usage().output_tokens());
  }
  // They did share steps: fewer decode calls than alone, batches of five.
  EXPECT_LT(model_->stats().decode_steps() - decode_steps_alone, decode_steps_alone);
  EXPECT_GE(scheduler_->stats().batch_size().snapshot().count, 1u);
}

TEST_P(BatchedEqualsAloneTest, SameSeedSameTextBatchedOrAlone) {
  Load(GetParam());
  std::vector<std::pair<std::string, Params>> prompts;
  for (int64_t seed : {11, 12, 13, 11}) {
    prompts.emplace_back("The river", Params{{"seed", IntParam(seed)},
                                             {"temperature", DoubleParam(1.0)},
                                             {"top_k", IntParam(100)},
                                             {"top_p", DoubleParam(0.95)},
                                             {"max_tokens", IntParam(24)}});
  }
  const std::vector<Outcome> alone = RunEach(prompts, /*batched=*/false);
  const std::vector<Outcome> together = RunEach(prompts, /*batched=*/true);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(together[i].output, alone[i].output) << i;
  EXPECT_EQ(together[3].output, together[0].output);  // the same seed, in the same batch
  EXPECT_NE(alone[0].output, alone[1].output);        // other seeds, other text
  EXPECT_NE(alone[1].output, alone[2].output);
}

INSTANTIATE_TEST_SUITE_P(Models, BatchedEqualsAloneTest,
                         ::testing::Values("tiny_lm.pt", "tiny_gru.pt"));

// fixed_long.pt never ends a text within its context: the sequences below
// run for as long as the test says.
TEST_F(TorchLmTest, LongPromptIsPrefilledAChunkPerStepWhileOthersDecode) {
  Load("fixed_long.pt", /*prefill_chunk=*/4);
  Stream("short", "ab", {{"max_tokens", IntParam(40)}});
  ASSERT_TRUE(scheduler_->RunStep());  // "short": its prompt, and its first token
  EXPECT_EQ(model_->stats().prefill_chunks(), 1);
  Stream("long", std::string(40, 'a'), {{"max_tokens", IntParam(3)}});
  for (int chunk = 1; chunk <= 10; ++chunk) {
    ASSERT_TRUE(scheduler_->RunStep());
    EXPECT_EQ(model_->stats().prefill_chunks(), 1 + chunk);  // one chunk of "long" per step
    EXPECT_THAT(model_->stats().last_decode_batch(), ElementsAre("short"));  // not held up
  }
  ASSERT_TRUE(scheduler_->RunStep());  // "long" took its first token from its last chunk
  EXPECT_THAT(model_->stats().last_decode_batch(), ElementsAre("short", "long"));
  RunAll();
  EXPECT_TRUE(Result("long").status.ok());
  EXPECT_EQ(released_.at("long").prefill_steps, 10);
  EXPECT_EQ(released_.at("long").prefilled, 40);
  EXPECT_EQ(Result("long").last.usage().input_tokens(), 40u);
}

TEST_F(TorchLmTest, CallerLeavingDuringPrefillStopsItWithinOneChunk) {
  Load("fixed_long.pt", /*prefill_chunk=*/4);
  auto call = Stream("long", std::string(40, 'a'));
  ASSERT_TRUE(scheduler_->RunStep());  // the first chunk
  EXPECT_EQ(model_->engine().live_caches(), 1);
  call->Cancel(EndCause::kClientCancelled);
  scheduler_->RunStep();  // the boundary releases it; no step is left to run
  ASSERT_EQ(released_.count("long"), 1u);
  EXPECT_EQ(released_.at("long").prefill_steps, 1);
  EXPECT_EQ(released_.at("long").prefilled, 4);
  EXPECT_EQ(model_->stats().prefill_chunks(), 1);
  EXPECT_EQ(model_->engine().live_caches(), 0);
  EXPECT_EQ(Result("long").status.code(), absl::StatusCode::kCancelled);
}

TEST_F(TorchLmTest, CancelMidStreamFreesTheCacheAndTheNextStepLeavesItOut) {
  Load("fixed_long.pt");
  const uint64_t cache = model_->info().cache_bytes;
  Stream("x", "one", {{"max_tokens", IntParam(40)}});
  auto y = Stream("y", "two", {{"max_tokens", IntParam(40)}});
  Stream("z", "six", {{"max_tokens", IntParam(40)}});  // prompts of one size: equal state
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(scheduler_->RunStep());
  EXPECT_THAT(model_->stats().last_decode_batch(), ElementsAre("x", "y", "z"));
  EXPECT_EQ(model_->engine().live_caches(), 3);
  EXPECT_EQ(model_->engine().live_cache_bytes(), 3 * cache);
  const uint64_t held = scheduler_->state_bytes();
  EXPECT_GE(held, 3 * cache);

  y->Cancel(EndCause::kClientCancelled);
  ASSERT_TRUE(scheduler_->RunStep());
  ASSERT_EQ(released_.count("y"), 1u);
  EXPECT_EQ(released_.at("y").decode_steps, 2);  // steps 2 and 3; step 1 was its prompt
  EXPECT_EQ(model_->engine().live_caches(), 2);
  EXPECT_EQ(model_->engine().live_cache_bytes(), 2 * cache);
  EXPECT_EQ(scheduler_->state_bytes(), held / 3 * 2);  // what the metric shows
  EXPECT_THAT(model_->stats().last_decode_batch(), ElementsAre("x", "z"));
  EXPECT_EQ(scheduler_->stats().sequence_steps_after_end(), 0u);
}

TEST_F(TorchLmTest, EndOfTextFinishesWithStopAndUsage) {
  Load("fixed_text.pt");
  Stream("s", "Once", {{"temperature", DoubleParam(0)}, {"max_tokens", IntParam(1000)}});
  RunAll();
  const Outcome out = Result("s");
  ASSERT_TRUE(out.status.ok()) << out.status;
  const std::string rest = std::string(kFixedText).substr(4);
  EXPECT_EQ(out.output, rest);
  EXPECT_EQ(out.last.finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(out.last.usage().input_tokens(), 4u);
  EXPECT_EQ(out.last.usage().output_tokens(), rest.size() + 1);  // and the end of text
  // Chunks end on character boundaries: "é" (2 bytes), "→" (3) and "ï" (2)
  // each went out whole, in one chunk.
  EXPECT_EQ(out.chunks.size(), rest.size() - 1 - 2 - 1);
  for (const std::string& chunk : out.chunks) EXPECT_EQ(Utf8IncompleteTail(chunk), 0u) << chunk;
  EXPECT_THAT(out.chunks, ::testing::Contains("\xE2\x86\x92"));
}

TEST_F(TorchLmTest, MaxTokensAndAFullContextFinishWithLength) {
  Load("fixed_text.pt");
  Stream("max", "Once", {{"temperature", DoubleParam(0)}, {"max_tokens", IntParam(5)}});
  RunAll();
  Outcome out = Result("max");
  EXPECT_EQ(out.output, " upon");
  EXPECT_EQ(out.last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(out.last.usage().output_tokens(), 5u);

  // fixed_long.pt's text outlasts its context of 64: a prompt of 60 leaves
  // room for the token its prefill picks and four decoded at 60..63.
  Load("fixed_long.pt");
  const std::string text = std::string(kFixedText) + kFixedText;
  Stream("full", text.substr(0, 60), {{"temperature", DoubleParam(0)}});
  RunAll();
  out = Result("full");
  EXPECT_EQ(out.output, text.substr(60, 5));
  EXPECT_EQ(out.last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(out.last.usage().output_tokens(), 5u);
}

TEST_F(TorchLmTest, StopStringsEndTheOutputBeforeThem) {
  Load("fixed_text.pt");
  const Params greedy = {{"temperature", DoubleParam(0)}};
  Params cafe = greedy;
  cafe.emplace_back("stop", StringParam("caf\xC3\xA9"));
  Stream("cafe", "Once", cafe);
  Params fox = greedy;
  fox.emplace_back("stop", StringParam("not in the text"));
  fox.emplace_back("stop3", StringParam("fox"));
  fox.emplace_back("stop4", StringParam("The end"));
  Stream("fox", "Once", fox);
  RunAll();
  Outcome out = Result("cafe");
  EXPECT_EQ(out.output, " upon a time, a ");
  EXPECT_EQ(out.last.finish_reason(), v1::FINISH_REASON_STOP);
  // The stop string's tokens were generated, not sent.
  EXPECT_EQ(out.last.usage().output_tokens(), std::string(" upon a time, a caf\xC3\xA9").size());
  out = Result("fox");
  EXPECT_EQ(out.output, " upon a time, a caf\xC3\xA9 \xE2\x86\x92 a na\xC3\xAFve ");
  EXPECT_EQ(out.last.finish_reason(), v1::FINISH_REASON_STOP);
}

TEST_F(TorchLmTest, BadParametersAreRefusedWithWhatToSend) {
  Load("tiny_lm.pt");
  auto error = [&](const std::string& input, Params params) {
    const absl::Status s = PrepareError(input, std::move(params));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    return std::string(s.message());
  };
  EXPECT_EQ(error("hi", {{"top_p", DoubleParam(0)}}),
            "parameter top_p of model lm must be above 0 and at most 1 (1 keeps every token), "
            "got 0");
  EXPECT_THAT(error("hi", {{"temperature", DoubleParam(-1)}}),
              HasSubstr("parameter temperature of model lm must be 0..5, got -1"));
  EXPECT_THAT(error("hi", {{"max_tokens", IntParam(0)}}),
              HasSubstr("parameter max_tokens of model lm must be 1..1000000, got 0"));
  EXPECT_THAT(error("hi", {{"top_k", IntParam(-3)}}),
              HasSubstr("parameter top_k of model lm must be 0..1000000, got -3"));
  EXPECT_THAT(error("hi", {{"stop2", StringParam(std::string(65, 's'))}}),
              AllOf(HasSubstr("stop2"), HasSubstr("at most 64")));
  EXPECT_THAT(error("hi", {{"max_tokens", StringParam("ten")}}),
              HasSubstr("must be set as int64_param, got string_param"));
  EXPECT_THAT(error("hi", {{"top_n", IntParam(3)}}), HasSubstr("top_n"));
  EXPECT_EQ(error(std::string(49, 'a'), {}),
            "the input of model lm is 49 bytes (one token each), longer than its context of 48 "
            "tokens; send at most 48 bytes");
  // What is within range is accepted, an empty input included (the model
  // has an end-of-text token to start from).
  EXPECT_TRUE(PrepareError("", {{"top_p", DoubleParam(1e-6)}, {"top_k", IntParam(1)}}).ok());
  EXPECT_TRUE(PrepareError(std::string(48, 'a'), {}).ok());
}

TEST_F(TorchLmTest, DescriptionAndParametersAreListed) {
  Load("tiny_lm.pt");
  EXPECT_THAT(model_->description(),
              AllOf(HasSubstr("tiny_lm.pt"), HasSubstr("257 tokens, context 48")));
  std::vector<std::string> names;
  for (const ParameterSpec& spec : model_->parameters().specs()) names.push_back(spec.name());
  EXPECT_THAT(names, ElementsAre("max_tokens", "temperature", "top_k", "top_p", "seed", "stop",
                                 "stop2", "stop3", "stop4"));
  EXPECT_EQ(model_->limits().max_batch, 32);
}

TEST(TorchModelsFlagTest, ParsesNamePathPairsAndRefusesOthers) {
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> models =
      ParseTorchModels("tinylm=models/tinylm/tinylm.pt, other = /srv/o.pt");
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_THAT(*models, ElementsAre(std::make_pair(std::string("tinylm"),
                                                  std::string("models/tinylm/tinylm.pt")),
                                   std::make_pair(std::string("other"), std::string("/srv/o.pt"))));
  EXPECT_THAT(ParseTorchModels("").value(), SizeIs(0));
  for (const char* bad : {"tinylm", "=x.pt", "tinylm=", "a=b.pt,c"}) {
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> parsed = ParseTorchModels(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("must look like NAME=PATH")) << bad;
  }
}

}  // namespace
}  // namespace sluice
