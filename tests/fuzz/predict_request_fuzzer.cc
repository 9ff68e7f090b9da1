// Fuzzes request decoding: a PredictRequest parsed from raw bytes (as gRPC
// hands it to the server), validated and decoded by each built-in model
// through Model::Prepare, and, when accepted, run for a bounded number of
// generator steps with small limits.
//
// Invariants:
//   - A rejection is INVALID_ARGUMENT with a message naming the model.
//   - An accepted request only carries parameters the model declares.
//   - echo: the chunks concatenate to the input, each at most chunk_bytes
//     (all but the last exactly), then Done(stop).
//   - synthetic: chunk i is "t<i> " (or chunk_bytes bytes), fail_at ends in
//     INTERNAL, throw_at throws, the end is Done(length) after `tokens`
//     chunks; it waits only when token_interval_us asks for pacing.
//   - charlm: one byte per chunk, at most max_tokens of them, Done(length)
//     exactly at max_tokens; the same seed gives the same text.
//
// Bounds: synthetic runs with an already-cancelled token when the request
// asks for CPU burn or a hang (both then return at once), a paced call stops
// at its first wait, and synthetic and charlm runs stop after kMaxSteps steps
// or kMaxBytes of output.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "models/charlm/charlm.h"
#include "models/echo.h"
#include "models/model.h"
#include "models/synthetic.h"
#include "sluice/v1/inference.pb.h"
#include "tests/fuzz/fuzz_util.h"

namespace sluice {
namespace {

// Step bounds per run: echo runs to the end (its steps are bounded by the
// input), the others stop after a few hundred chunks.
constexpr int kMaxSteps = 256;
constexpr size_t kMaxBytes = 1 << 20;

// Run: what driving one prepared call produced.
struct Run {
  enum class End { kDone, kError, kWait, kThrow, kBound };
  std::vector<std::string> chunks;
  std::string output;
  End end = End::kBound;
  FinishReason reason = FinishReason::kStop;
  absl::Status status;
  std::string thrown;
};

Run Drive(GeneratorModelBase& model, absl::string_view name, const v1::PredictRequest& request,
          bool cancelled, size_t max_steps = kMaxSteps) {
  Run run;
  absl::StatusOr<std::unique_ptr<PreparedCall>> prepared = model.Prepare(name, request);
  CHECK(prepared.ok()) << prepared.status();
  CancellationSource source;
  if (cancelled) source.Cancel();
  absl::StatusOr<std::unique_ptr<EncodedGenerator>> gen = (*prepared)->Start(source.token());
  CHECK(gen.ok()) << name << ": Start failed: " << gen.status();
  CHECK(*gen != nullptr);
  for (size_t step = 0; step < max_steps && run.output.size() < kMaxBytes; ++step) {
    try {
      Step<std::string> s = (*gen)->Next();
      switch (s.kind()) {
        case Step<std::string>::Kind::kChunk:
          run.output += s.chunk();
          run.chunks.push_back(std::move(s.chunk()));
          continue;
        case Step<std::string>::Kind::kDone:
          run.end = Run::End::kDone;
          run.reason = s.finish_reason();
          return run;
        case Step<std::string>::Kind::kWait:
          run.end = Run::End::kWait;
          return run;
        case Step<std::string>::Kind::kError:
          run.end = Run::End::kError;
          run.status = s.status();
          CHECK(!run.status.ok());
          return run;
      }
    } catch (const std::exception& e) {
      run.end = Run::End::kThrow;
      run.thrown = e.what();
      return run;
    }
  }
  return run;
}

// Int64: the value the request sends for `name`, or `def`. Only called for
// accepted requests, where a sent value is a valid int64_param.
int64_t Int64(const v1::PredictRequest& r, const std::string& name, int64_t def) {
  auto it = r.parameters().find(name);
  return it == r.parameters().end() ? def : it->second.int64_param();
}

void CheckEcho(EchoModel& model, const v1::PredictRequest& request) {
  const size_t chunk_bytes = Int64(request, "chunk_bytes", 4);
  const std::string& input = request.input();
  const Run run = Drive(model, "echo", request, false, input.size() + 1);
  if (run.end == Run::End::kBound) {
    CHECK(absl::StartsWith(input, run.output)) << "echo output is not a prefix of its input";
    return;
  }
  CHECK(run.end == Run::End::kDone && run.reason == FinishReason::kStop)
      << "echo ended with " << static_cast<int>(run.end) << " " << run.status;
  CHECK(run.output == input) << "echo returned \"" << absl::CHexEscape(run.output) << "\" for \""
                             << absl::CHexEscape(input) << "\"";
  for (size_t i = 0; i < run.chunks.size(); ++i) {
    const size_t n = run.chunks[i].size();
    CHECK(n > 0 && n <= chunk_bytes) << "chunk " << i << " has " << n << " bytes";
    if (i + 1 < run.chunks.size()) CHECK_EQ(n, chunk_bytes) << "chunk " << i;
  }
}

void CheckSynthetic(SyntheticModel& model, const v1::PredictRequest& request) {
  const int64_t tokens = Int64(request, "tokens", 16);
  const int64_t cost_us = Int64(request, "token_cost_us", 0);
  const int64_t interval_us = Int64(request, "token_interval_us", 0);
  const int64_t chunk_bytes = Int64(request, "chunk_bytes", 0);
  const int64_t fail_at = Int64(request, "fail_at", -1);
  const int64_t throw_at = Int64(request, "throw_at", -1);
  const int64_t hang_at = Int64(request, "hang_at", -1);
  const bool cancelled = cost_us > 0 || hang_at >= 0;
  const Run run = Drive(model, "synthetic", request, cancelled);

  const int64_t n = run.chunks.size();
  for (int64_t i = 0; i < n; ++i) {
    std::string want = absl::StrCat("t", i, " ");
    if (chunk_bytes > 0) want.resize(chunk_bytes, '.');
    CHECK(run.chunks[i] == want) << "synthetic chunk " << i << " is \""
                                 << absl::CHexEscape(run.chunks[i].substr(0, 64)) << "\"";
    CHECK(i != fail_at && i != throw_at) << "no fault at chunk " << i;
  }
  CHECK_LE(n, tokens);
  switch (run.end) {
    case Run::End::kDone:
      CHECK(run.reason == FinishReason::kLength && n == tokens) << n << " of " << tokens;
      break;
    case Run::End::kError:
      if (run.status.code() == absl::StatusCode::kInternal) {
        CHECK_EQ(n, fail_at) << run.status;
        CHECK(absl::StrContains(run.status.message(), "fail_at")) << run.status;
      } else {
        CHECK_EQ(run.status.code(), absl::StatusCode::kCancelled) << run.status;
        CHECK(cancelled && cost_us > 0) << "cancelled mid-step without a cancel";
      }
      break;
    case Run::End::kThrow:
      CHECK_EQ(n, throw_at) << run.thrown;
      CHECK_NE(n, fail_at) << "fail_at comes before throw_at";
      break;
    case Run::End::kWait:
      CHECK_GT(interval_us, 0) << "waited without pacing";
      CHECK_GT(n, 0) << "the first chunk is never paced";
      break;
    case Run::End::kBound:
      break;
  }
}

void CheckCharLm(CharLmModel& model, const v1::PredictRequest& request) {
  const int64_t max_tokens = Int64(request, "max_tokens", 128);
  const Run run = Drive(model, "charlm", request, false);
  const int64_t n = run.chunks.size();
  for (const std::string& c : run.chunks) CHECK_EQ(c.size(), 1u);
  CHECK_LE(n, max_tokens);
  if (run.end != Run::End::kBound) {
    CHECK(run.end == Run::End::kDone) << static_cast<int>(run.end) << " " << run.status;
    CHECK_EQ(run.reason == FinishReason::kLength, n == max_tokens) << n;
  }
  if (request.parameters().contains("seed")) {
    const Run again = Drive(model, "charlm", request, false);
    CHECK(again.output == run.output) << "same seed, different text";
  }
}

struct Models {
  Models() : charlm(std::string(DefaultCharLmCorpus()), 5) {
    CHECK(echo.Setup().ok());
    CHECK(synthetic.Setup().ok());
    CHECK(charlm.Setup().ok());
  }
  EchoModel echo;
  SyntheticModel synthetic;
  CharLmModel charlm;
};

// Prepared: whether `model` accepts `request`; if not, checks the rejection.
bool Accepts(GeneratorModelBase& model, const std::string& name,
             const v1::PredictRequest& request) {
  absl::StatusOr<std::unique_ptr<PreparedCall>> prepared = model.Prepare(name, request);
  if (!prepared.ok()) {
    fuzz::ExpectRejection(prepared.status(), {name}, request.ShortDebugString());
    return false;
  }
  CHECK(*prepared != nullptr);
  for (const auto& [param, value] : request.parameters()) {
    bool declared = false;
    for (const ParameterSpec& spec : model.parameters().specs()) {
      declared = declared || spec.name() == param;
    }
    CHECK(declared) << name << " accepted the undeclared parameter " << absl::CHexEscape(param);
  }
  return true;
}

}  // namespace
}  // namespace sluice

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sluice;  // NOLINT: a test driver
  static Models* const models = new Models();
  v1::PredictRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  if (Accepts(models->echo, "echo", request)) CheckEcho(models->echo, request);
  if (Accepts(models->synthetic, "synthetic", request)) {
    CheckSynthetic(models->synthetic, request);
  }
  if (Accepts(models->charlm, "charlm", request)) CheckCharLm(models->charlm, request);
  return 0;
}
