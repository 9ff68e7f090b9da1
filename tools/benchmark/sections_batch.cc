// The continuous-batching sections: what sharing model steps buys (aggregate
// tokens/s of batched_synthetic, batched against one sequence per step, both
// against the ideal the cost model allows), and what a caller leaving a batch
// costs the others (none of its work after the step in flight; the
// survivors' steps get cheaper at once).

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "models/batched_synthetic.h"
#include "service/server.h"
#include "tools/benchmark/bench_stats.h"
#include "tools/benchmark/child_server.h"
#include "tools/benchmark/sections.h"
#include "tools/benchmark/stream_probe.h"

namespace sluice::bench {
namespace {

v1::PredictRequest Batched(int64_t tokens, const BenchConfig& config) {
  v1::PredictRequest request;
  request.set_model("batched_synthetic");
  auto& p = *request.mutable_parameters();
  p["tokens"].set_int64_param(tokens);
  p["step_cost_us"].set_int64_param(config.batch_step_cost_us);
  p["sequence_cost_us"].set_int64_param(config.batch_sequence_cost_us);
  return request;
}

// Ideal: tokens/s the cost model allows for `n` streams when steps hold up
// to `max_batch` of them: each step of b sequences costs step + b * sequence
// and gives b tokens.
double Ideal(int n, int max_batch, const BenchConfig& config) {
  const int b = std::min(n, max_batch);
  const double step_us =
      static_cast<double>(config.batch_step_cost_us) + b * config.batch_sequence_cost_us;
  return b * 1e6 / step_us;
}

// TokensPerSecond: `n` streams against `server`, whose steps hold up to
// `max_batch` sequences, read as fast as they come; output chunks per second
// over a window after a warm-up. Sequences in a full batch keep their place
// until they finish (newcomers wait in the queue), so with more streams than
// max_batch only max_batch of these endless streams are ever served.
double TokensPerSecond(const ChildServer& server, int n, int max_batch, const BenchConfig& config) {
  std::vector<std::shared_ptr<grpc::Channel>> channels =
      MakeChannels(server.target(), std::min(n, 8), absl::Now() + absl::Seconds(10));
  if (channels.empty()) return 0;
  StreamSet set(std::move(channels));
  std::vector<StreamPlan> plans(n);
  for (StreamPlan& plan : plans) plan.request = Batched(100'000'000, config);
  set.Start(std::move(plans));
  if (!set.WaitFirstChunks(std::min(n, max_batch), absl::Now() + absl::Seconds(30))) return 0;
  absl::SleepFor(config.batch_warmup);  // steady state: every stream in the batch
  const int64_t before = set.chunks();
  const absl::Time t0 = absl::Now();
  absl::SleepFor(config.batch_window);
  const int64_t after = set.chunks();
  const absl::Duration window = absl::Now() - t0;
  set.CancelAll();
  set.WaitDone(absl::Now() + absl::Seconds(30));
  return static_cast<double>(after - before) / absl::ToDoubleSeconds(window);
}

void RunBatchThroughput(const BenchConfig& config, Report& report) {
  const std::string section = "Batching: throughput";
  const int max_batch = 64;
  auto start = [&](int batch, const std::string& name) {
    return ChildServer::Start(
        {config.sluice_server, "--metrics_port=-1", "--builtin_models=batched_synthetic",
         // max_batch=1: one sequence per step, one call at a time.
         absl::StrCat("--model_options=batched_synthetic:max_batch=", batch)},
        config.work_dir, name);
  };
  std::unique_ptr<ChildServer> batched = start(max_batch, "batched");
  std::unique_ptr<ChildServer> unbatched = start(1, "unbatched");
  if (batched == nullptr || unbatched == nullptr) {
    report.Add(section, "servers", "did not start", "", Verdict::kNotMet);
    return;
  }
  report.Add(section, "setup",
             absl::StrCat("batched_synthetic, step_cost_us=", config.batch_step_cost_us,
                          ", sequence_cost_us=", config.batch_sequence_cost_us,
                          ": a step of b sequences costs step + b x sequence; stock server with "
                          "max_batch=",
                          max_batch, " against max_batch=1 (one sequence per step), ",
                          config.batch_reps, " interleaved repetitions of a ",
                          absl::FormatDuration(config.batch_window), " window"));
  double one_stream = 0, at32 = 0;
  for (int n : config.batch_streams) {
    std::vector<double> b, u;
    for (int rep = 0; rep < config.batch_reps; ++rep) {
      // Interleaved, and which goes first alternates.
      if (rep % 2 == 0) {
        b.push_back(TokensPerSecond(*batched, n, max_batch, config));
        u.push_back(TokensPerSecond(*unbatched, n, 1, config));
      } else {
        u.push_back(TokensPerSecond(*unbatched, n, 1, config));
        b.push_back(TokensPerSecond(*batched, n, max_batch, config));
      }
    }
    const double ideal = Ideal(n, max_batch, config);
    const double bm = Summarize(b).p50, um = Summarize(u).p50;
    const std::string label = absl::StrCat(n, n == 1 ? " stream" : " streams");
    report.Add(section, label + ": tokens/s batched / one sequence per step",
               absl::StrCat(FormatSpread(b), " / ", FormatSpread(u), " (ideal ",
                            FormatNumber(ideal), " / ", FormatNumber(Ideal(n, 1, config)), ")"));
    std::vector<double> of_ideal;
    for (double v : b) of_ideal.push_back(v / ideal);
    const bool judged = n == 32;
    report.Add(section, label + ": batched, of the ideal the cost model allows",
               FormatSpread(of_ideal, "x"), judged ? ">= 0.8x at 32 streams" : "",
               judged ? Check(Summarize(of_ideal).p50 >= 0.8) : Verdict::kNone);
    report.Add(section, label + ": batched over one sequence per step",
               FormatSpread(Ratios(b, u), "x"));
    if (n == 1) one_stream = bm;
    if (n == 32) at32 = bm;
    (void)um;
  }
  if (one_stream > 0 && at32 > 0) {
    report.Add(section, "32 streams over 1 stream, batched (aggregate tokens/s)",
               FormatNumber(at32 / one_stream) + "x");
  }
  const bool clean = batched->Stop() & unbatched->Stop();
  report.Add(section, "servers exit after SIGTERM", clean ? "0 (clean)" : "NOT clean", "clean",
             Check(clean));
}

// --- abandonment in a batch ---------------------------------------------------

// LocalBatchServer: an in-process server with batched_synthetic, so that the
// model's own counters (which sequences each step held) are at hand.
class LocalBatchServer {
 public:
  static std::unique_ptr<LocalBatchServer> Start() {
    auto local = std::unique_ptr<LocalBatchServer>(new LocalBatchServer());
    ModelRegistry registry;
    auto model = std::make_unique<BatchedSyntheticModel>();
    local->model_ = model.get();
    if (!registry.Register("batched_synthetic", std::move(model)).ok()) return nullptr;
    ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.shutdown_grace = absl::Seconds(2);
    ModelOptions batch;
    batch.batch.max_batch = 64;
    options.model_overrides["batched_synthetic"] = batch;
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options, std::move(registry));
    if (!server.ok()) {
      std::fprintf(stderr, "in-process server did not start: %s\n",
                   server.status().ToString().c_str());
      return nullptr;
    }
    local->server_ = *std::move(server);
    return local;
  }
  ~LocalBatchServer() {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(2));
  }
  std::string target() const { return server_->target(); }
  const BatchedSyntheticModel::Stats& model() const { return model_->stats(); }
  const BatchStats& batch() const { return server_->batcher("batched_synthetic")->stats(); }

 private:
  LocalBatchServer() = default;
  BatchedSyntheticModel* model_ = nullptr;
  std::unique_ptr<Server> server_;
};

// Sample: the model's and the client's counts at one moment.
struct Sample {
  absl::Time at;
  int64_t chunks;    // received by the client
  int64_t steps;     // model steps run
  int64_t released;  // sequences the model released
};

void RunBatchAbandonment(const BenchConfig& config, Report& report) {
  const std::string section = "Batching: abandonment";
  constexpr int kStreams = 32;
  constexpr int kLeavers = 16;
  std::mt19937_64 rng(config.seed);
  std::vector<double> gap_before_us, gap_after_us, step_before_us, step_after_us;
  std::vector<double> in_next_step;  // leavers in the first step after all were released
  uint64_t steps_after_end = 0, leavers = 0;
  std::vector<double> per_sequence;  // sequence-steps after its call ended, per leaver
  bool ok = true;
  for (int round = 0; round < config.batch_abandon_rounds; ++round) {
    std::unique_ptr<LocalBatchServer> server = LocalBatchServer::Start();
    if (server == nullptr) {
      ok = false;
      break;
    }
    std::vector<std::shared_ptr<grpc::Channel>> channels =
        MakeChannels(server->target(), 4, absl::Now() + absl::Seconds(10));
    StreamSet set(std::move(channels));
    std::vector<StreamPlan> plans(kStreams);
    std::uniform_int_distribution<int64_t> leave_at(config.batch_leave_after_min,
                                                    config.batch_leave_after_max);
    for (int i = 0; i < kStreams; ++i) {
      plans[i].request = Batched(100'000'000, config);
      plans[i].request.set_request_id(absl::StrCat("s", i));
      if (i % 2 == 0) plans[i].cancel_after_chunks = leave_at(rng);
    }
    set.Start(std::move(plans));
    // Sample what the client and the model count, every millisecond, until
    // the leavers are all released and the survivors have run on as long.
    std::vector<Sample> samples;
    const absl::Time give_up = absl::Now() + absl::Seconds(60);
    absl::Time released_at = absl::InfiniteFuture();
    while (absl::Now() < give_up) {
      const Sample s{absl::Now(), set.chunks(), server->model().steps(),
                     server->model().released()};
      samples.push_back(s);
      if (s.released >= kLeavers && released_at == absl::InfiniteFuture()) released_at = s.at;
      if (s.at > released_at + absl::Seconds(1)) break;
      absl::SleepFor(absl::Milliseconds(1));  // a sampling period, not a synchronisation
    }
    const std::vector<std::string> next_step = server->model().last_batch();
    const std::vector<StreamRecord> records = set.records();
    absl::Time first_cancel = absl::InfiniteFuture();
    for (const StreamRecord& r : records) {
      if (r.cancelled != absl::InfinitePast()) first_cancel = std::min(first_cancel, r.cancelled);
    }
    if (released_at == absl::InfiniteFuture() || first_cancel == absl::InfiniteFuture()) {
      ok = false;
      continue;
    }
    // Before: from when every stream had its first chunk to the first cancel.
    absl::Time all_in = absl::InfinitePast();
    for (const StreamRecord& r : records) all_in = std::max(all_in, r.first_chunk);
    auto at = [&](absl::Time t) {
      auto it =
          std::find_if(samples.begin(), samples.end(), [&](const Sample& s) { return s.at >= t; });
      return it == samples.end() ? samples.back() : *it;
    };
    const Sample b0 = at(all_in), b1 = at(first_cancel - absl::Milliseconds(1));
    const Sample a0 = at(released_at), a1 = samples.back();
    if (b1.steps > b0.steps && a1.steps > a0.steps) {
      const double before_s = absl::ToDoubleSeconds(b1.at - b0.at);
      const double after_s = absl::ToDoubleSeconds(a1.at - a0.at);
      gap_before_us.push_back(1e6 * before_s / (double(b1.chunks - b0.chunks) / kStreams));
      gap_after_us.push_back(1e6 * after_s / (double(a1.chunks - a0.chunks) / kLeavers));
      step_before_us.push_back(1e6 * before_s / double(b1.steps - b0.steps));
      step_after_us.push_back(1e6 * after_s / double(a1.steps - a0.steps));
    }
    int leavers_in_next = 0;
    for (const std::string& id : next_step) {
      const int i = std::atoi(id.c_str() + 1);
      if (i % 2 == 0) ++leavers_in_next;
    }
    in_next_step.push_back(leavers_in_next);
    const BatchStats& stats = server->batch();
    steps_after_end += stats.sequence_steps_after_end();
    leavers += kLeavers;
    const Histogram::Snapshot h = stats.steps_after_end().snapshot();
    // Buckets 0, 1, 2, 4: every leaver's count, at the resolution they give.
    uint64_t previous = 0;
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      for (uint64_t k = previous; k < h.cumulative[i]; ++k) per_sequence.push_back(h.bounds[i]);
      previous = h.cumulative[i];
    }
    for (uint64_t k = previous; k < h.count; ++k) per_sequence.push_back(1e9);  // above 4
    set.CancelAll();
    set.WaitDone(absl::Now() + absl::Seconds(30));
  }
  report.Add(
      section, "setup",
      absl::StrCat(config.batch_abandon_rounds, " rounds of ", kStreams,
                   " streams of batched_synthetic in one batch (step_cost_us=",
                   config.batch_step_cost_us, ", sequence_cost_us=", config.batch_sequence_cost_us,
                   "); ", kLeavers, " cancel at a chunk drawn from ", config.batch_leave_after_min,
                   "..", config.batch_leave_after_max, "; in-process server"));
  if (!ok || gap_before_us.empty()) {
    report.Add(section, "measurement", "incomplete", "", Verdict::kNotMet);
    return;
  }
  const double model_before = config.batch_step_cost_us + kStreams * config.batch_sequence_cost_us;
  const double model_after = config.batch_step_cost_us + kLeavers * config.batch_sequence_cost_us;
  report.Add(
      section, "survivors' inter-chunk time, before / after the cancels",
      absl::StrCat(FormatSpread(gap_before_us, " us"), " / ", FormatSpread(gap_after_us, " us")));
  report.Add(section, "model step interval (server), before / after",
             absl::StrCat(FormatSpread(step_before_us, " us"), " / ",
                          FormatSpread(step_after_us, " us"), " (cost model: ",
                          FormatNumber(model_before), " / ", FormatNumber(model_after), " us)"));
  const double speedup = Summarize(gap_before_us).p50 / Summarize(gap_after_us).p50;
  const double model_speedup = model_before / model_after;
  report.Add(section, "survivors' speed-up", absl::StrCat(FormatNumber(speedup), "x"),
             absl::StrCat("the cost model's ", FormatNumber(model_speedup), "x (within 15%)"),
             Check(speedup >= 0.85 * model_speedup));
  report.Add(section, "leavers in the step after their release (model's own record), max",
             FormatNumber(Summarize(in_next_step).max), "0",
             Check(Summarize(in_next_step).max == 0));
  const Summary p = Summarize(per_sequence);
  report.Add(section, "sequence-steps after cancel per cancelled sequence, p50 / p99 / max",
             absl::StrCat(FormatNumber(p.p50), " / ", FormatNumber(p.p99), " / ",
                          p.max > 4 ? std::string("more than 4") : FormatNumber(p.max), " (",
                          leavers, " cancels; ", steps_after_end, " in all)"),
             "max 1", Check(p.max <= 1));
}

}  // namespace

void RunBatching(const BenchConfig& config, Report& report) {
  RunBatchThroughput(config, report);
  RunBatchAbandonment(config, report);
}

}  // namespace sluice::bench
