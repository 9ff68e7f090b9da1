#ifndef SLUICE_SERVICE_SERVER_METRICS_H_
#define SLUICE_SERVICE_SERVER_METRICS_H_

// What a sluice server exposes on /metrics, in one place.

#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "handlers/output_budget.h"
#include "handlers/stats.h"
#include "service/inference_service.h"
#include "service/served_model.h"

namespace sluice {

// RenderServerMetrics: the Prometheus page for `models`, each labelled
// model="<name>", plus `unknown` (calls that named no served model, or were
// refused before one was chosen) labelled model="". The set of label values
// is thus fixed by the server, never by what clients send.
//
// Families (see README.md for the full list): sluice_requests_total and
// sluice_calls_ended_total carry only the combinations that happened;
// gauges, chunk counters and histograms are always present for every served
// model. Each number is read on its own (lock-free), so a page taken while
// calls end may be off by those calls between families.
//
// Thread-safe; reads only thread-safe accessors of `models` and `unknown`.
// `budget`: the server-wide output budget, or nullptr if there is none;
// `service`: for the request memory held, or nullptr.
absl::StatusOr<std::string> RenderServerMetrics(
    const std::map<std::string, ServedModel, std::less<>>& models, const ModelStats& unknown,
    const OutputBudget* budget = nullptr, const InferenceService* service = nullptr);

}  // namespace sluice

#endif  // SLUICE_SERVICE_SERVER_METRICS_H_
