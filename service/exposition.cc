#include "service/exposition.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

constexpr absl::string_view kHistogramSuffixes[] = {"_bucket", "_sum", "_count"};

absl::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// SeriesNames: the names of the series a family of `type` writes.
std::vector<std::string> SeriesNames(absl::string_view name, MetricType type) {
  std::vector<std::string> names = {std::string(name)};
  if (type == MetricType::kHistogram) {
    for (absl::string_view suffix : kHistogramSuffixes) {
      names.push_back(absl::StrCat(name, suffix));
    }
  }
  return names;
}

// LabelText: `{a="x",b="y"}` (with `extra` last if given), or "" for none.
std::string LabelText(const MetricLabels& labels,
                      const std::pair<std::string, std::string>* extra) {
  if (labels.empty() && extra == nullptr) return "";
  std::string out = "{";
  auto append = [&out](const std::pair<std::string, std::string>& label) {
    if (out.size() > 1) out += ',';
    absl::StrAppend(&out, label.first, "=\"", ExpositionWriter::EscapeLabelValue(label.second),
                    "\"");
  };
  for (const auto& label : labels) append(label);
  if (extra != nullptr) append(*extra);
  out += '}';
  return out;
}

}  // namespace

bool ExpositionWriter::IsValidMetricName(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != ':') return false;
  }
  return true;
}

bool ExpositionWriter::IsValidLabelName(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

std::string ExpositionWriter::EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string ExpositionWriter::FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // The shortest text that reads back as the same double; in plain decimals
  // where that stays readable (integers up to 2^53 without a fraction,
  // 0.0001 rather than 1e-04), in exponent form beyond.
  const double magnitude = std::fabs(value);
  const std::chars_format format = magnitude == 0 || (magnitude >= 1e-5 && magnitude < 1e21)
                                       ? std::chars_format::fixed
                                       : std::chars_format::general;
  char buffer[64];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value, format);
  return std::string(buffer, result.ptr);
}

void ExpositionWriter::Fail(std::string message) {
  if (status_.ok()) status_ = absl::InvalidArgumentError(std::move(message));
}

void ExpositionWriter::Declare(absl::string_view name, MetricType type, absl::string_view help) {
  if (!IsValidMetricName(name)) {
    return Fail(absl::StrCat("metric name \"", name,
                             "\" is not valid: use letters, digits, '_' and ':', not starting "
                             "with a digit"));
  }
  // A histogram's series are named name_bucket, name_sum and name_count; no
  // two families may write series of the same name.
  const std::vector<std::string> mine = SeriesNames(name, type);
  for (const Family& other : families_) {
    for (const std::string& theirs : SeriesNames(other.name, other.type)) {
      if (std::find(mine.begin(), mine.end(), theirs) != mine.end()) {
        return Fail(absl::StrCat("metric family \"", name, "\" clashes with family \"", other.name,
                                 "\" (both write series named \"", theirs, "\")"));
      }
    }
  }
  index_.emplace(std::string(name), families_.size());
  families_.push_back(Family{std::string(name), type, EscapeHelp(help), "", {}});
}

ExpositionWriter::Family* ExpositionWriter::Sample(absl::string_view name, bool histogram,
                                                   const MetricLabels& labels) {
  if (!status_.ok()) return nullptr;
  auto it = index_.find(name);
  if (it == index_.end()) {
    Fail(absl::StrCat("metric family \"", name, "\" was not declared"));
    return nullptr;
  }
  Family& family = families_[it->second];
  if ((family.type == MetricType::kHistogram) != histogram) {
    Fail(absl::StrCat("metric family \"", name, "\" is a ", TypeName(family.type), "; use ",
                      histogram ? "Add" : "AddHistogram", " for its samples"));
    return nullptr;
  }
  std::set<absl::string_view> names;
  for (const auto& label : labels) {
    if (!IsValidLabelName(label.first) || absl::StartsWith(label.first, "__")) {
      Fail(absl::StrCat("label name \"", label.first, "\" of ", name,
                        " is not valid: use letters, digits and '_', not starting with a digit "
                        "or \"__\""));
      return nullptr;
    }
    if (histogram && label.first == "le") {
      Fail(absl::StrCat("label \"le\" of histogram ", name, " is reserved for its buckets"));
      return nullptr;
    }
    if (!names.insert(label.first).second) {
      Fail(absl::StrCat("label \"", label.first, "\" appears twice in a sample of ", name));
      return nullptr;
    }
  }
  std::string key = LabelText(labels, nullptr);
  if (!family.seen.insert(key).second) {
    Fail(absl::StrCat("metric ", name, key, " was added twice"));
    return nullptr;
  }
  return &family;
}

void ExpositionWriter::Add(absl::string_view name, const MetricLabels& labels, double value) {
  Family* family = Sample(name, /*histogram=*/false, labels);
  if (family == nullptr) return;
  if (family->type == MetricType::kCounter && !(value >= 0)) {
    return Fail(absl::StrCat("counter ", name, " must be a number >= 0, got ", FormatValue(value)));
  }
  absl::StrAppend(&family->samples, name, LabelText(labels, nullptr), " ", FormatValue(value),
                  "\n");
}

void ExpositionWriter::AddHistogram(absl::string_view name, const MetricLabels& labels,
                                    const HistogramValue& value) {
  Family* family = Sample(name, /*histogram=*/true, labels);
  if (family == nullptr) return;
  if (value.cumulative.size() != value.bounds.size()) {
    return Fail(absl::StrCat("histogram ", name, " has ", value.bounds.size(), " bounds but ",
                             value.cumulative.size(), " bucket counts"));
  }
  for (size_t i = 0; i < value.bounds.size(); ++i) {
    if (!std::isfinite(value.bounds[i]) || (i > 0 && !(value.bounds[i] > value.bounds[i - 1]))) {
      return Fail(
          absl::StrCat("histogram ", name, " bounds must be finite and strictly increasing"));
    }
    const uint64_t below = i == 0 ? 0 : value.cumulative[i - 1];
    if (value.cumulative[i] < below || value.cumulative[i] > value.count) {
      return Fail(absl::StrCat("histogram ", name,
                               " bucket counts must be cumulative and at most its count"));
    }
  }
  for (size_t i = 0; i < value.bounds.size(); ++i) {
    const std::pair<std::string, std::string> le = {"le", FormatValue(value.bounds[i])};
    absl::StrAppend(&family->samples, name, "_bucket", LabelText(labels, &le), " ",
                    value.cumulative[i], "\n");
  }
  const std::pair<std::string, std::string> inf = {"le", "+Inf"};
  absl::StrAppend(&family->samples, name, "_bucket", LabelText(labels, &inf), " ", value.count,
                  "\n");
  absl::StrAppend(&family->samples, name, "_sum", LabelText(labels, nullptr), " ",
                  FormatValue(value.sum), "\n");
  absl::StrAppend(&family->samples, name, "_count", LabelText(labels, nullptr), " ", value.count,
                  "\n");
}

absl::StatusOr<std::string> ExpositionWriter::Finish() && {
  if (!status_.ok()) return status_;
  std::string out;
  for (const Family& family : families_) {
    absl::StrAppend(&out, "# HELP ", family.name, " ", family.help, "\n", "# TYPE ", family.name,
                    " ", TypeName(family.type), "\n", family.samples);
  }
  return out;
}

}  // namespace sluice
