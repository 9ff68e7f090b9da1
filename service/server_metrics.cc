#include "service/server_metrics.h"

#include "service/exposition.h"

namespace sluice {
namespace {

constexpr char kRequests[] = "sluice_requests_total";
constexpr char kEnded[] = "sluice_calls_ended_total";
constexpr char kInFlight[] = "sluice_calls_in_flight";
constexpr char kChunks[] = "sluice_chunks_generated_total";
constexpr char kChunksAfterCancel[] = "sluice_chunks_after_cancel_total";
constexpr char kFirstChunk[] = "sluice_time_to_first_chunk_seconds";
constexpr char kInterChunk[] = "sluice_inter_chunk_seconds";
constexpr char kQueueDepth[] = "sluice_queue_depth";
constexpr char kRunning[] = "sluice_running_calls";
constexpr char kBusyWorkers[] = "sluice_busy_workers";
constexpr char kWorkers[] = "sluice_workers";

constexpr Method kMethods[] = {Method::kPredict, Method::kPredictStream};
constexpr absl::StatusCode kMaxCode = absl::StatusCode::kUnauthenticated;

void DeclareFamilies(ExpositionWriter& page) {
  page.Declare(kRequests, MetricType::kCounter,
               "Calls that ended, by model, method and the gRPC status code they ended with.");
  page.Declare(kEnded, MetricType::kCounter,
               "Calls that ended, by cause (completed, client_cancelled, deadline, disconnected, "
               "stalled, shutdown, rejected, error) and stage (admission, queued, running).");
  page.Declare(kInFlight, MetricType::kGauge,
               "Calls that arrived and have not ended; method=\"PredictStream\" are the open "
               "streams.");
  page.Declare(kChunks, MetricType::kCounter, "Output chunks the model generated.");
  page.Declare(kChunksAfterCancel, MetricType::kCounter,
               "Output chunks the model generated after the server learned that their call "
               "was no longer wanted (the step in flight at the cancel); wasted work.");
  page.Declare(kFirstChunk, MetricType::kHistogram,
               "Time from admission to the first output chunk, in seconds.");
  page.Declare(kInterChunk, MetricType::kHistogram,
               "Time between consecutive output chunks of a call, in seconds.");
  page.Declare(kQueueDepth, MetricType::kGauge, "Admitted calls waiting for an active slot.");
  page.Declare(kRunning, MetricType::kGauge,
               "Calls holding an active slot: generating, paced, or waiting for their client "
               "to read.");
  page.Declare(kBusyWorkers, MetricType::kGauge, "Worker threads inside a model step.");
  page.Declare(kWorkers, MetricType::kGauge, "Worker threads of the model.");
}

// AddCallCounts: the families every account has, served model or not.
void AddCallCounts(ExpositionWriter& page, const std::string& model, const ModelStats& stats) {
  for (Method method : kMethods) {
    const std::string method_name(MethodName(method));
    for (int c = 0; c <= static_cast<int>(kMaxCode); ++c) {
      const auto code = static_cast<absl::StatusCode>(c);
      if (const uint64_t n = stats.requests(method, code); n > 0) {
        page.Add(kRequests,
                 {{"model", model},
                  {"method", method_name},
                  {"code", std::string(StatusCodeName(code))}},
                 static_cast<double>(n));
      }
    }
    for (int cause = 0; cause < kNumEndCauses; ++cause) {
      for (int stage = 0; stage < kNumEndStages; ++stage) {
        const uint64_t n =
            stats.ended(method, static_cast<EndCause>(cause), static_cast<EndStage>(stage));
        if (n == 0) continue;
        page.Add(kEnded,
                 {{"model", model},
                  {"method", method_name},
                  {"cause", std::string(EndCauseName(static_cast<EndCause>(cause)))},
                  {"stage", std::string(EndStageName(static_cast<EndStage>(stage)))}},
                 static_cast<double>(n));
      }
    }
    page.Add(kInFlight, {{"model", model}, {"method", method_name}},
             static_cast<double>(stats.in_flight(method)));
  }
}

HistogramValue ToValue(const Histogram::Snapshot& s) {
  return HistogramValue{s.bounds, s.cumulative, s.count, s.sum};
}

}  // namespace

absl::StatusOr<std::string> RenderServerMetrics(
    const std::map<std::string, ServedModel, std::less<>>& models, const ModelStats& unknown) {
  ExpositionWriter page;
  DeclareFamilies(page);
  for (const auto& [name, served] : models) {
    const ModelStats& stats = *served.stats;
    const Executor& executor = *served.executor;
    const MetricLabels labels = {{"model", name}};
    AddCallCounts(page, name, stats);
    page.Add(kChunks, labels, static_cast<double>(stats.chunks_generated()));
    page.Add(kChunksAfterCancel, labels, static_cast<double>(stats.chunks_after_cancel()));
    page.AddHistogram(kFirstChunk, labels, ToValue(stats.time_to_first_chunk().snapshot()));
    page.AddHistogram(kInterChunk, labels, ToValue(stats.inter_chunk().snapshot()));
    page.Add(kQueueDepth, labels, executor.queued());
    page.Add(kRunning, labels, executor.active());
    page.Add(kBusyWorkers, labels, executor.busy_workers());
    page.Add(kWorkers, labels, executor.options().workers);
  }
  AddCallCounts(page, "", unknown);
  return std::move(page).Finish();
}

}  // namespace sluice
