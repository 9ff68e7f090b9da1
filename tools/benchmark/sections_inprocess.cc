// Sections that run a sluice server in this process: waste after cancel,
// stop latency and the queue under overload. Client and server share one
// clock, so a client's cancel time and the model's release time compare
// exactly, and the synthetic model's own counters and the server's worker
// threads' CPU clocks are at hand.

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "models/sync.h"
#include "models/synthetic.h"
#include "service/peer_probe.h"
#include "service/server.h"
#include "tools/benchmark/bench_stats.h"
#include "tools/benchmark/sections.h"
#include "tools/benchmark/stream_probe.h"

namespace sluice::bench {
namespace {

using Release = SyntheticModel::Release;

// ReleaseLog: every generator the synthetic model released, by request_id,
// and the CPU clocks of the threads that release completed generators: the
// executor's workers (a generator that finishes is released by the worker
// that ran its last step; a cancelled one may be released on a gRPC thread).
class ReleaseLog {
 public:
  void Record(const Release& release) {
    std::optional<clockid_t> clock;
    MutexLock lock(&mu_);
    releases_[release.request_id] = release;
    if (!release.cancelled) {
      const pthread_t self = pthread_self();
      bool known = false;
      for (pthread_t t : workers_) known |= pthread_equal(t, self) != 0;
      clockid_t id;
      if (!known && pthread_getcpuclockid(self, &id) == 0) {
        workers_.push_back(self);
        worker_clocks_.push_back(id);
      }
    }
    cv_.SignalAll();
  }

  // WaitFor: until the generator of `request_id` was released, or `deadline`.
  std::optional<Release> WaitFor(const std::string& request_id, absl::Time deadline) {
    MutexLock lock(&mu_);
    while (true) {
      auto it = releases_.find(request_id);
      if (it != releases_.end()) return it->second;
      if (cv_.WaitWithDeadline(&mu_, deadline)) return std::nullopt;
    }
  }

  bool Released(const std::string& request_id) {
    MutexLock lock(&mu_);
    return releases_.count(request_id) > 0;
  }

  // WorkerCpu: the CPU time the worker threads seen so far have used.
  absl::Duration WorkerCpu() {
    MutexLock lock(&mu_);
    absl::Duration total;
    for (clockid_t clock : worker_clocks_) {
      timespec ts;
      if (clock_gettime(clock, &ts) == 0) total += absl::DurationFromTimespec(ts);
    }
    return total;
  }

  int workers_seen() {
    MutexLock lock(&mu_);
    return static_cast<int>(worker_clocks_.size());
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::map<std::string, Release> releases_ ABSL_GUARDED_BY(mu_);
  std::vector<pthread_t> workers_ ABSL_GUARDED_BY(mu_);
  std::vector<clockid_t> worker_clocks_ ABSL_GUARDED_BY(mu_);
};

// LocalServer: a sluice server in this process serving only "synthetic".
class LocalServer {
 public:
  static std::unique_ptr<LocalServer> Start(ExecutorOptions executor) {
    auto local = std::unique_ptr<LocalServer>(new LocalServer());
    ModelRegistry registry;
    auto model = std::make_unique<SyntheticModel>();
    local->model_ = model.get();
    ReleaseLog* log = &local->releases_;
    model->set_on_release([log](const Release& r) { log->Record(r); });
    if (!registry.Register("synthetic", std::move(model)).ok()) return nullptr;
    ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.model_defaults = executor;
    options.shutdown_grace = absl::Seconds(2);
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options, std::move(registry));
    if (!server.ok()) {
      std::fprintf(stderr, "in-process server did not start: %s\n",
                   server.status().ToString().c_str());
      return nullptr;
    }
    local->server_ = *std::move(server);
    return local;
  }

  ~LocalServer() {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(2));
  }

  std::string target() const { return server_->target(); }
  const SyntheticModel::Stats& model() const { return model_->stats(); }
  const ModelStats& stats() const { return *server_->stats("synthetic"); }
  const Executor& executor() const { return *server_->executor("synthetic"); }
  ReleaseLog& releases() { return releases_; }

 private:
  LocalServer() = default;
  ReleaseLog releases_;  // outlives the server, which calls into it
  SyntheticModel* model_ = nullptr;
  std::unique_ptr<Server> server_;
};

std::string P50P99Max(const std::vector<double>& v, const std::string& unit) {
  const Summary s = Summarize(v);
  return absl::StrCat(FormatNumber(s.p50), " / ", FormatNumber(s.p99), " / ", FormatNumber(s.max),
                      unit);
}

absl::Duration ProcessCpu() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

absl::Duration ThreadCpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

// WarmUpWorkers: runs short calls to completion until the release log has
// seen `workers` worker threads (bounded), so their CPU clocks can be read.
void WarmUpWorkers(LocalServer& server, const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                   int workers) {
  for (int attempt = 0; attempt < 10 && server.releases().workers_seen() < workers; ++attempt) {
    std::vector<StreamPlan> plans;
    for (int i = 0; i < 8 * workers; ++i) {
      StreamPlan plan;
      plan.request = Synthetic({{"tokens", 20}, {"token_cost_us", 200}},
                               absl::StrCat("warmup-", attempt, "-", i));
      plans.push_back(std::move(plan));
    }
    StreamSet set(channels);
    set.Start(std::move(plans));
    set.WaitDone(absl::Now() + absl::Seconds(20));
    server.executor().WaitQuiescent(absl::Now() + absl::Seconds(2));
  }
}

}  // namespace

void RunWasteAndStopLatency(const BenchConfig& config, Report& report, PlotData& plot) {
  const std::string section = "Waste after cancel, stop latency";
  constexpr int kWorkers = 2;
  std::unique_ptr<LocalServer> server = LocalServer::Start(ExecutorOptions{kWorkers, 256, 1024});
  if (server == nullptr) {
    report.Add(section, "in-process server", "did not start");
    return;
  }
  auto channels = MakeChannels(server->target(), 4, absl::Now() + absl::Seconds(10));
  if (channels.empty()) {
    report.Add(section, "in-process server", "could not connect");
    return;
  }
  WarmUpWorkers(*server, channels, kWorkers);
  const bool have_worker_clocks = server->releases().workers_seen() == kWorkers;

  std::mt19937_64 rng(config.seed);
  std::uniform_int_distribution<int64_t> cancel_at(1, config.cancel_at_max);
  const absl::Duration cost = absl::Microseconds(config.waste_token_cost_us);
  auto request = [&](const std::string& id) {
    return Synthetic(
        {{"tokens", config.waste_tokens}, {"token_cost_us", config.waste_token_cost_us}}, id);
  };

  // 1. One stream at a time, each cancelled at a random chunk while its
  // generator runs flat out (the client reads as fast as chunks come, so a
  // chunk is always in the making when the cancel lands: the worst case for
  // work after a cancel). Everything the model and the workers do between
  // the client's cancel and the release belongs to that one stream.
  struct Snapshot {
    absl::Duration worker_cpu, model_cpu;
    int64_t model_chunks = 0;
    // Chunks completed after the server knew of the cancel, as the model
    // counts them (its token was cancelled) and as the framework does (the
    // call was cancelled). Both count the same chunks, so a stream's figure
    // is the larger of the two, never their sum.
    int64_t model_chunks_after_cancel = 0;
    int64_t framework_chunks_after_cancel = 0;
  };
  auto snapshot = [&] {
    return Snapshot{have_worker_clocks ? server->releases().WorkerCpu() : absl::ZeroDuration(),
                    server->model().cpu_burned(), server->model().chunks(),
                    server->model().chunks_after_cancel(),
                    static_cast<int64_t>(server->stats().chunks_after_cancel())};
  };
  std::vector<double> stop_ms, chunks_after, worker_cpu_after_us, model_cpu_after_us, readahead;
  std::vector<double> chunks_after_server_knew;
  // The stop latency in two parts, where the model saw the cancel mid-step:
  // client cancel -> the model's step saw its token cancelled (the cancel's
  // way through the client, loopback and the server's gRPC threads), and
  // that moment -> the generator released (sluice's own part).
  std::vector<double> to_seen_ms, seen_to_release_ms;
  absl::Duration would_have, model_cpu_after_total;
  int measured = 0, anomalies = 0;
  const absl::Time serial_deadline = absl::Now() + absl::Seconds(config.quick ? 30 : 90);
  for (int i = 0; i < config.waste_streams && absl::Now() < serial_deadline; ++i) {
    const std::string id = absl::StrCat("waste-", i);
    const int64_t k = cancel_at(rng);
    Snapshot at_cancel;
    StreamSet set({channels[0]}, [&](int) { at_cancel = snapshot(); });
    StreamPlan plan;
    plan.request = request(id);
    plan.cancel_after_chunks = k;
    set.Start({plan});
    const bool done = set.WaitDone(absl::Now() + absl::Seconds(30));
    std::optional<Release> release = server->releases().WaitFor(id, absl::Now() + absl::Seconds(5));
    server->executor().WaitQuiescent(absl::Now() + absl::Seconds(2));
    const Snapshot after = snapshot();
    const StreamRecord record = set.records()[0];
    if (!done || !release.has_value() || record.code != grpc::StatusCode::CANCELLED ||
        record.cancelled == absl::InfinitePast()) {
      ++anomalies;
      continue;
    }
    ++measured;
    stop_ms.push_back(absl::ToDoubleMilliseconds(release->released_at - record.cancelled));
    if (release->cancel_seen_at != absl::InfinitePast()) {
      to_seen_ms.push_back(absl::ToDoubleMilliseconds(release->cancel_seen_at - record.cancelled));
      seen_to_release_ms.push_back(
          absl::ToDoubleMilliseconds(release->released_at - release->cancel_seen_at));
    }
    chunks_after.push_back(static_cast<double>(after.model_chunks - at_cancel.model_chunks));
    chunks_after_server_knew.push_back(static_cast<double>(
        std::max(after.model_chunks_after_cancel - at_cancel.model_chunks_after_cancel,
                 after.framework_chunks_after_cancel - at_cancel.framework_chunks_after_cancel)));
    worker_cpu_after_us.push_back(
        absl::ToDoubleMicroseconds(after.worker_cpu - at_cancel.worker_cpu));
    model_cpu_after_us.push_back(absl::ToDoubleMicroseconds(after.model_cpu - at_cancel.model_cpu));
    model_cpu_after_total += after.model_cpu - at_cancel.model_cpu;
    readahead.push_back(static_cast<double>(release->chunks - record.chunks));
    would_have += (config.waste_tokens - k) * cost;
  }
  const std::string setup = absl::StrFormat(
      "%d streams one at a time; tokens=%d, token_cost_us=%d; cancel at chunk 1..%d", measured,
      config.waste_tokens, config.waste_token_cost_us, config.cancel_at_max);
  report.Add(section, "serial cancels measured", setup);
  if (anomalies > 0) {
    report.Add(section, "streams that did not end as cancelled", absl::StrCat(anomalies));
  }
  report.Add(section, "chunks completed after the client's cancel, per stream p50 / p99 / max",
             P50P99Max(chunks_after, ""), "p99 <= 1",
             Check(!chunks_after.empty() && Summarize(chunks_after).p99 <= 1));
  report.Add(
      section, "chunks completed after the server knew of the cancel, per stream max",
      FormatNumber(Summarize(chunks_after_server_knew).max), "<= 1",
      Check(!chunks_after_server_knew.empty() && Summarize(chunks_after_server_knew).max <= 1));
  report.Add(section,
             "model CPU after the client's cancel (incl. the whole chunk in flight), "
             "p50 / p99 / max",
             P50P99Max(model_cpu_after_us, " us"));
  if (have_worker_clocks) {
    report.Add(section, "worker threads' CPU after the client's cancel, p50 / p99 / max",
               P50P99Max(worker_cpu_after_us, " us"));
  }
  report.Add(
      section,
      "read-ahead discarded: chunks made before the cancel, never delivered, "
      "p50 / max",
      absl::StrCat(
          FormatNumber(Summarize(readahead).p50), " / ", FormatNumber(Summarize(readahead).max),
          absl::StrCat(" (the stream buffer holds ", ServerOptions().stream_buffer_chunks, ")")));
  // 1b. The same, with the whole process's CPU clock (every thread: the
  // server's workers, gRPC's threads, its timers; and this client's own
  // handling of the cancel) from the cancel until 400 ms after it, which
  // takes in the server's second look at the client's connection 250 ms
  // after a cancel (how it tells a cancel from a disconnect). The control is
  // a stream of exactly k chunks that ends normally, measured over the same
  // window from its k-th chunk: the cost of a stream's end without a cancel
  // (its last message, both sides' clean-up), so the difference is what the
  // cancel costs, the chunk in flight included.
  std::vector<double> process_after_us, control_us;
  auto window_cpu = [&](int64_t k, bool cancel, const std::string& id) {
    absl::Duration cpu_at_mark;
    absl::Time mark_time;
    {
      StreamSet set({channels[0]}, [&](int) {
        cpu_at_mark = ProcessCpu();
        mark_time = absl::Now();
      });
      StreamPlan plan;
      plan.request =
          cancel ? request(id)
                 : Synthetic({{"tokens", k}, {"token_cost_us", config.waste_token_cost_us}}, id);
      plan.cancel_after_chunks = k;
      plan.mark_only = !cancel;
      set.Start({plan});
      set.WaitDone(absl::Now() + absl::Seconds(30));
    }
    absl::SleepFor(mark_time + absl::Milliseconds(400) - absl::Now());
    return absl::ToDoubleMicroseconds(ProcessCpu() - cpu_at_mark);
  };
  for (int i = 0; i < config.isolated_cancels; ++i) {
    const int64_t k = cancel_at(rng);
    process_after_us.push_back(window_cpu(k, /*cancel=*/true, absl::StrCat("isolated-", i)));
    control_us.push_back(window_cpu(k, /*cancel=*/false, absl::StrCat("control-", i)));
  }
  // One look at a connection, as the server's peer probe takes it (an exact
  // netlink sock_diag lookup), timed on this thread's CPU clock.
  std::vector<double> probe_us;
  {
    PeerProbe probe;
    const std::string target = server->target();
    int port = 0;
    absl::SimpleAtoi(target.substr(target.rfind(':') + 1), &port);
    probe.set_local_address("127.0.0.1", port);
    for (int i = 0; i < 10; ++i) {
      const absl::Duration t0 = ThreadCpu();
      probe.IsConnected("ipv4:127.0.0.1:1", absl::Now());
      probe_us.push_back(absl::ToDoubleMicroseconds(ThreadCpu() - t0));
    }
  }
  if (!process_after_us.empty()) {
    report.Add(section,
               "client and server process CPU in the 400 ms after an isolated cancel, p50 / max "
               "(control: from the last chunk of a stream that ends normally)",
               absl::StrCat(FormatNumber(Summarize(process_after_us).p50), " / ",
                            FormatNumber(Summarize(process_after_us).max), " us (control ",
                            FormatNumber(Summarize(control_us).p50), " / ",
                            FormatNumber(Summarize(control_us).max), " us), ",
                            process_after_us.size(), " cancels; the server's alone: next section"));
  }
  report.Add(section,
             "of which: one look at a connection by the peer probe (netlink sock_diag), p50",
             absl::StrCat(FormatNumber(Summarize(probe_us).p50),
                          " us CPU (taken at a client cancel and again 250 ms later)"));
  // Contrast: what generation that ran on to the end would have cost.
  const double per_cancel_us =
      std::max(0.0, Summarize(process_after_us).p50 - Summarize(control_us).p50);
  const absl::Duration burned = absl::Microseconds(per_cancel_us * measured);
  report.Add(section, "work the serial cancels' streams would still have done",
             absl::StrCat(FormatNumber(absl::ToDoubleSeconds(would_have)),
                          " s of CPU (to the end of their ", config.waste_tokens, " tokens)"));
  report.Add(section,
             "what was burned after those cancels (est., client and server, the cancel's "
             "extra over a normal end)",
             absl::StrCat(FormatNumber(absl::ToDoubleMilliseconds(burned)), " ms (", measured,
                          " x the isolated figure; ",
                          FormatNumber(absl::ToDoubleMilliseconds(model_cpu_after_total)),
                          " ms of it the model's): ",
                          FormatNumber(absl::FDivDuration(would_have,
                                                          std::max(burned, absl::Microseconds(1)))),
                          "x less"));

  const Summary serial_stop = Summarize(stop_ms);
  const double stop_target_ms = 1.0 + static_cast<double>(config.waste_token_cost_us) / 1000;
  report.Add(section, "stop latency, serial: cancel -> generator released, p50 / p99 / max",
             P50P99Max(stop_ms, " ms"),
             absl::StrCat("p99 < 1 ms + chunk in flight (", FormatNumber(stop_target_ms), " ms)"),
             Check(!stop_ms.empty() && serial_stop.p99 < stop_target_ms));
  report.Add(section,
             "of which: cancel -> model saw it mid-step (client, loopback, gRPC), "
             "p50 / p99 / max",
             P50P99Max(to_seen_ms, " ms") + absl::StrCat(" (", to_seen_ms.size(), " cancels)"));
  report.Add(section, "of which: model saw it -> generator released (sluice), p50 / p99 / max",
             P50P99Max(seen_to_release_ms, " ms"));
  plot.stop_latency_serial_ms = stop_ms;
  plot.stop_target_ms = stop_target_ms;

  // 2. Many streams at once, more than the workers: a cancel may land while
  // its call runs, waits for a turn or waits on its client.
  std::vector<double> concurrent_ms, concurrent_to_seen_ms, concurrent_seen_to_release_ms;
  int released_parked = 0;  // cancelled between steps: released on the cancelling thread
  const int64_t framework_after_before = server->stats().chunks_after_cancel();
  const int64_t model_after_before = server->model().chunks_after_cancel();
  const int64_t steps_after_before = server->model().steps_after_cancel();
  int cancels = 0, concurrent_anomalies = 0;
  const absl::Time concurrent_deadline = absl::Now() + absl::Seconds(config.quick ? 30 : 90);
  for (int round = 0; round < config.concurrent_rounds && absl::Now() < concurrent_deadline;
       ++round) {
    std::vector<StreamPlan> plans;
    std::vector<std::string> ids;
    for (int i = 0; i < config.concurrent_streams; ++i) {
      ids.push_back(absl::StrCat("concurrent-", round, "-", i));
      StreamPlan plan;
      plan.request = request(ids.back());
      plan.cancel_after_chunks = cancel_at(rng);
      plans.push_back(std::move(plan));
    }
    StreamSet set(channels);
    set.Start(std::move(plans));
    set.WaitDone(absl::Now() + absl::Seconds(60));
    const std::vector<StreamRecord> records = set.records();
    for (size_t i = 0; i < records.size(); ++i) {
      std::optional<Release> release =
          server->releases().WaitFor(ids[i], absl::Now() + absl::Seconds(5));
      if (!release.has_value() || records[i].cancelled == absl::InfinitePast() ||
          records[i].code != grpc::StatusCode::CANCELLED) {
        ++concurrent_anomalies;
        continue;
      }
      ++cancels;
      concurrent_ms.push_back(
          absl::ToDoubleMilliseconds(release->released_at - records[i].cancelled));
      if (release->cancel_seen_at == absl::InfinitePast()) {
        ++released_parked;
      } else {
        concurrent_to_seen_ms.push_back(
            absl::ToDoubleMilliseconds(release->cancel_seen_at - records[i].cancelled));
        concurrent_seen_to_release_ms.push_back(
            absl::ToDoubleMilliseconds(release->released_at - release->cancel_seen_at));
      }
    }
  }
  server->executor().WaitQuiescent(absl::Now() + absl::Seconds(2));
  const Summary concurrent_stop = Summarize(concurrent_ms);
  report.Add(section, "concurrent cancels measured",
             absl::StrFormat("%d (%d streams at a time on %d workers)", cancels,
                             config.concurrent_streams, kWorkers));
  if (concurrent_anomalies > 0) {
    report.Add(section, "concurrent streams that did not end as cancelled",
               absl::StrCat(concurrent_anomalies));
  }
  report.Add(section, "stop latency, concurrent: p50 / p99 / max", P50P99Max(concurrent_ms, " ms"),
             absl::StrCat("p99 < ", FormatNumber(stop_target_ms), " ms"),
             Check(!concurrent_ms.empty() && concurrent_stop.p99 < stop_target_ms));
  report.Add(section, "of which, cancelled mid-step: cancel -> model saw it, p50 / p99 / max",
             P50P99Max(concurrent_to_seen_ms, " ms") +
                 absl::StrFormat(" (%d cancels; %d more found their call between steps)",
                                 static_cast<int>(concurrent_to_seen_ms.size()), released_parked));
  report.Add(section, "of which, cancelled mid-step: model saw it -> released, p50 / p99 / max",
             P50P99Max(concurrent_seen_to_release_ms, " ms"));
  report.Add(
      section, "concurrent: chunks completed after the server learned of the cancel",
      absl::StrFormat("%d by the framework's count, %d by the model's; %d steps begun after it, "
                      "over %d cancels",
                      server->stats().chunks_after_cancel() - framework_after_before,
                      server->model().chunks_after_cancel() - model_after_before,
                      server->model().steps_after_cancel() - steps_after_before, cancels),
      "<= 1 per cancel",
      Check(server->stats().chunks_after_cancel() - framework_after_before <=
            static_cast<uint64_t>(cancels)));
  plot.stop_latency_concurrent_ms = concurrent_ms;
  plot.concurrent_title =
      absl::StrFormat("%d at once, %d workers", config.concurrent_streams, kWorkers);
}

void RunQueue(const BenchConfig& config, Report& report) {
  const std::string section = "Queue under overload";
  // Two slots, each held by a call that blocks until cancelled (one per
  // worker), and a queue that then fills up.
  std::unique_ptr<LocalServer> server =
      LocalServer::Start(ExecutorOptions{2, 2, config.queue_capacity});
  if (server == nullptr) {
    report.Add(section, "in-process server", "did not start");
    return;
  }
  auto channels = MakeChannels(server->target(), 2, absl::Now() + absl::Seconds(10));
  if (channels.empty()) {
    report.Add(section, "in-process server", "could not connect");
    return;
  }
  StreamSet holders(channels);
  {
    std::vector<StreamPlan> plans(2);
    for (int i = 0; i < 2; ++i) {
      plans[i].request = Synthetic({{"tokens", 1}, {"hang_at", 0}}, absl::StrCat("holder-", i));
    }
    holders.Start(std::move(plans));
  }
  if (!server->model().WaitForStarted(2, absl::Seconds(10))) {
    report.Add(section, "slot holders", "did not start");
    return;
  }

  // The queue: half will cancel, a quarter will run out of time, a quarter stay.
  const int q = config.queue_capacity;
  const int n_cancel = q / 2, n_deadline = q / 4, n_stay = q - n_cancel - n_deadline;
  const absl::Duration queued_deadline = absl::Seconds(config.quick ? 3 : 5);
  auto plans_of = [](const std::string& prefix, int n, absl::Duration deadline) {
    std::vector<StreamPlan> plans(n);
    for (int i = 0; i < n; ++i) {
      plans[i].request = Synthetic({{"tokens", 4}}, absl::StrCat(prefix, i));
      plans[i].deadline = deadline;
    }
    return plans;
  };
  StreamSet leavers(channels), expiring(channels), stayers(channels);
  leavers.Start(plans_of("queued-cancel-", n_cancel, absl::InfiniteDuration()));
  stayers.Start(plans_of("queued-stay-", n_stay, absl::InfiniteDuration()));
  expiring.Start(plans_of("queued-deadline-", n_deadline, queued_deadline));
  const bool full = server->executor().WaitForQueued(q, absl::Now() + absl::Seconds(10));

  // Overload: every further call is refused at once. Calls one after another,
  // each timed from its start to its status.
  std::vector<double> refused_ms;
  int refused = 0, other = 0;
  const absl::Time overload_deadline = absl::Now() + queued_deadline / 2;
  for (int i = 0; i < config.queue_rejected_calls && absl::Now() < overload_deadline; ++i) {
    StreamSet one({channels[i % channels.size()]});
    StreamPlan plan;
    plan.request = Synthetic({{"tokens", 4}}, absl::StrCat("overload-", i));
    one.Start({plan});
    if (!one.WaitDone(absl::Now() + absl::Seconds(5))) {
      ++other;
      continue;
    }
    const StreamRecord r = one.records()[0];
    if (r.code == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused;
      refused_ms.push_back(absl::ToDoubleMilliseconds(r.ended - r.started));
    } else {
      ++other;
    }
  }

  // The leavers leave: cancel now, deadlines expire on their own.
  leavers.CancelAll();
  const bool left = leavers.WaitDone(absl::Now() + absl::Seconds(10)) &&
                    expiring.WaitDone(absl::Now() + queued_deadline + absl::Seconds(10));
  const ModelStats& stats = server->stats();
  // The server learns of a departure a moment after the client: a cancel
  // travels as RST_STREAM, and a deadline fires on the client's clock first
  // (the server's copy of it began a transit later). A call the server has
  // not yet heard about may start like any other; what is measured is that a
  // call whose caller the server knows has left never does. So the slots free
  // once the server has counted every ending so far, or after 5 s (leavers
  // it never counted then start, and are reported).
  stats.WaitForEndedTotal(static_cast<uint64_t>(refused + other + n_cancel + n_deadline),
                          absl::Seconds(5));
  // Then the slots free up: the stayers (and only they) must run.
  holders.CancelAll();
  const bool stayed = stayers.WaitDone(absl::Now() + absl::Seconds(30));
  server->executor().WaitIdle(absl::Now() + absl::Seconds(10));

  int expired_seen_by_client = 0;
  for (const StreamRecord& r : expiring.records()) {
    expired_seen_by_client += r.code == grpc::StatusCode::DEADLINE_EXCEEDED;
  }
  int left_never_started = 0, leavers_total = 0, stayers_ok = 0;
  for (const auto& [prefix, n] : std::vector<std::pair<std::string, int>>{
           {"queued-cancel-", n_cancel}, {"queued-deadline-", n_deadline}}) {
    for (int i = 0; i < n; ++i) {
      ++leavers_total;
      if (!server->releases().Released(absl::StrCat(prefix, i))) ++left_never_started;
    }
  }
  for (const StreamRecord& r : stayers.records()) stayers_ok += r.code == grpc::StatusCode::OK;
  // The server classifies a client-side cancel a moment later (it looks at
  // the connection again); wait for its accounting to catch up.
  stats.WaitForEndedTotal(static_cast<uint64_t>(refused + other + leavers_total + n_stay + 2),
                          absl::Seconds(5));

  report.Add(section, "setup",
             absl::StrFormat("2 slots held, queue of %d filled%s; %d leave by cancel, %d by "
                             "deadline, %d stay",
                             q, full ? "" : " (NOT confirmed full)", n_cancel, n_deadline, n_stay));
  report.Add(section, "calls over capacity refused with RESOURCE_EXHAUSTED",
             absl::StrFormat("%d of %d", refused, refused + other));
  report.Add(section, "time to RESOURCE_EXHAUSTED p50 / p99 / max", P50P99Max(refused_ms, " ms"));
  report.Add(section, "queued calls whose caller left that never started",
             absl::StrFormat("%d of %d", left_never_started, leavers_total), "all",
             Check(left && leavers_total > 0 && left_never_started == leavers_total));
  report.Add(section, "callers that ran out of time and saw DEADLINE_EXCEEDED",
             absl::StrFormat("%d of %d", expired_seen_by_client, n_deadline));
  report.Add(
      section, "server's count of calls ended while queued",
      absl::StrFormat(
          "%d cancelled, %d deadline",
          stats.ended(Method::kPredictStream, EndCause::kClientCancelled, EndStage::kQueued) +
              stats.ended(Method::kPredictStream, EndCause::kDisconnected, EndStage::kQueued),
          stats.ended(Method::kPredictStream, EndCause::kDeadline, EndStage::kQueued)));
  report.Add(section, "queued calls that stayed, completed OK",
             absl::StrFormat("%d of %d", stayers_ok, n_stay), "all",
             Check(stayed && stayers_ok == n_stay));
  report.Add(
      section, "generators created in all",
      absl::StrFormat("%d (2 slot holders + %d stayers)", server->model().started(), n_stay));
}

}  // namespace sluice::bench
