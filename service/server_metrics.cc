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
constexpr char kBatchSteps[] = "sluice_batch_steps_total";
constexpr char kBatchSize[] = "sluice_batch_size";
constexpr char kBatchStepSeconds[] = "sluice_batch_step_seconds";
constexpr char kBatchMax[] = "sluice_batch_max_size";
constexpr char kBatchSequences[] = "sluice_batch_sequences";
constexpr char kBatchSittingOut[] = "sluice_batch_sequences_sitting_out";
constexpr char kBatchSatOut[] = "sluice_batch_sat_out_total";
constexpr char kBatchLeft[] = "sluice_batch_sequences_left_total";
constexpr char kBatchAfterEnd[] = "sluice_batch_sequence_steps_after_end_total";
constexpr char kBatchAfterEndPerSeq[] = "sluice_batch_steps_after_end";
constexpr char kBatchStateBytes[] = "sluice_batch_state_bytes";
constexpr char kOutputBuffered[] = "sluice_output_buffered_bytes";
constexpr char kOutputBudget[] = "sluice_output_budget_bytes";
constexpr char kOutputWaiting[] = "sluice_output_budget_waiting_streams";
constexpr char kRequestBytes[] = "sluice_request_bytes_held";
constexpr char kRequestBudget[] = "sluice_request_memory_bound_bytes";

constexpr Method kMethods[] = {Method::kPredict, Method::kPredictStream};
constexpr absl::StatusCode kMaxCode = absl::StatusCode::kUnauthenticated;

HistogramValue ToValue(const Histogram::Snapshot& s) {
  return HistogramValue{s.bounds, s.cumulative, s.count, s.sum};
}

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
  page.Declare(kBatchSteps, MetricType::kCounter, "Batched models: model steps run.");
  page.Declare(kBatchSize, MetricType::kHistogram,
               "Batched models: sequences advanced together by one model step.");
  page.Declare(kBatchStepSeconds, MetricType::kHistogram,
               "Batched models: time one model step took, in seconds.");
  page.Declare(kBatchMax, MetricType::kGauge, "Batched models: the largest batch allowed.");
  page.Declare(kBatchSequences, MetricType::kGauge,
               "Batched models: sequences holding model state (in the batch or sitting out).");
  page.Declare(kBatchSittingOut, MetricType::kGauge,
               "Batched models: sequences sitting out of the batch because their client is "
               "not reading (or the output budget is spent).");
  page.Declare(kBatchSatOut, MetricType::kCounter,
               "Batched models: times a sequence sat out of the batch for backpressure.");
  page.Declare(kBatchLeft, MetricType::kCounter,
               "Batched models: sequences that left the batch (their state released), by the "
               "cause of their call's end as known then.");
  page.Declare(kBatchAfterEnd, MetricType::kCounter,
               "Batched models: sequence-steps computed for a sequence whose call had already "
               "ended: only the step in flight when a caller left (at most one per sequence).");
  page.Declare(kBatchAfterEndPerSeq, MetricType::kHistogram,
               "Batched models: per sequence that left, the sequence-steps computed for it "
               "after its call ended (0 or 1).");
  page.Declare(kBatchStateBytes, MetricType::kGauge,
               "Batched models: memory the held sequences' state holds (e.g. KV caches), as "
               "the model reports it.");
  page.Declare(kOutputBuffered, MetricType::kGauge,
               "Encoded output buffered for clients, summed over every stream.");
  page.Declare(kOutputBudget, MetricType::kGauge,
               "The bound on sluice_output_buffered_bytes (--output_budget_bytes).");
  page.Declare(kOutputWaiting, MetricType::kGauge,
               "Streams whose model is paused until the output budget has room.");
  page.Declare(kRequestBytes, MetricType::kGauge,
               "Bytes of the requests of calls in flight (held until each call is done).");
  page.Declare(kRequestBudget, MetricType::kGauge,
               "The bound on sluice_request_bytes_held (--max_request_memory_bytes).");
}

void AddBatchFamilies(ExpositionWriter& page, const MetricLabels& labels,
                      const BatchScheduler& batcher) {
  const BatchStats& stats = batcher.stats();
  page.Add(kBatchSteps, labels, static_cast<double>(stats.steps()));
  page.AddHistogram(kBatchSize, labels, ToValue(stats.batch_size().snapshot()));
  page.AddHistogram(kBatchStepSeconds, labels, ToValue(stats.step_time().snapshot()));
  page.Add(kBatchMax, labels, batcher.options().limits.max_batch);
  page.Add(kBatchSequences, labels, batcher.held());
  page.Add(kBatchSittingOut, labels, batcher.sitting_out());
  page.Add(kBatchSatOut, labels, static_cast<double>(stats.sat_out()));
  for (int cause = 0; cause < kNumEndCauses; ++cause) {
    const uint64_t n = stats.left(static_cast<EndCause>(cause));
    if (n == 0) continue;
    MetricLabels with_cause = labels;
    with_cause.push_back({"cause", std::string(EndCauseName(static_cast<EndCause>(cause)))});
    page.Add(kBatchLeft, with_cause, static_cast<double>(n));
  }
  page.Add(kBatchAfterEnd, labels, static_cast<double>(stats.sequence_steps_after_end()));
  page.AddHistogram(kBatchAfterEndPerSeq, labels, ToValue(stats.steps_after_end().snapshot()));
  page.Add(kBatchStateBytes, labels, static_cast<double>(batcher.state_bytes()));
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

}  // namespace

absl::StatusOr<std::string> RenderServerMetrics(
    const std::map<std::string, ServedModel, std::less<>>& models, const ModelStats& unknown,
    const OutputBudget* budget, const InferenceService* service) {
  ExpositionWriter page;
  DeclareFamilies(page);
  for (const auto& [name, served] : models) {
    const ModelStats& stats = *served.stats;
    const MetricLabels labels = {{"model", name}};
    AddCallCounts(page, name, stats);
    page.Add(kChunks, labels, static_cast<double>(stats.chunks_generated()));
    page.Add(kChunksAfterCancel, labels, static_cast<double>(stats.chunks_after_cancel()));
    page.AddHistogram(kFirstChunk, labels, ToValue(stats.time_to_first_chunk().snapshot()));
    page.AddHistogram(kInterChunk, labels, ToValue(stats.inter_chunk().snapshot()));
    page.Add(kQueueDepth, labels, served.queued());
    if (const Executor* executor = served.executor.get()) {
      page.Add(kRunning, labels, executor->active());
      page.Add(kBusyWorkers, labels, executor->busy_workers());
      page.Add(kWorkers, labels, executor->options().workers);
    } else {
      page.Add(kRunning, labels, served.batcher->held());
      AddBatchFamilies(page, labels, *served.batcher);
    }
  }
  AddCallCounts(page, "", unknown);
  if (budget != nullptr) {
    page.Add(kOutputBuffered, {}, static_cast<double>(budget->used()));
    page.Add(kOutputBudget, {}, static_cast<double>(budget->limit()));
    page.Add(kOutputWaiting, {}, budget->waiting());
  }
  if (service != nullptr && service->max_request_memory_bytes() > 0) {
    page.Add(kRequestBytes, {}, static_cast<double>(service->request_bytes_held()));
    page.Add(kRequestBudget, {}, static_cast<double>(service->max_request_memory_bytes()));
  }
  return std::move(page).Finish();
}

}  // namespace sluice
