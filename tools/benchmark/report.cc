#include "tools/benchmark/report.h"

#include <algorithm>
#include <fstream>

#include "absl/strings/str_replace.h"

namespace sluice::bench {

const char* VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kMet:
      return "met";
    case Verdict::kNotMet:
      return "NOT met";
    case Verdict::kNone:
      break;
  }
  return "";
}

void Report::Add(std::string section, std::string metric, std::string value, std::string target,
                 Verdict verdict) {
  rows_.push_back(
      Row{std::move(section), std::move(metric), std::move(value), std::move(target), verdict});
}

void Report::Note(std::string text) { notes_.push_back(std::move(text)); }

int Report::targets_missed() const {
  return static_cast<int>(std::count_if(
      rows_.begin(), rows_.end(), [](const Row& r) { return r.verdict == Verdict::kNotMet; }));
}

void Report::Print(std::FILE* out) const {
  size_t metric_width = 0, value_width = 0;
  for (const Row& r : rows_) {
    metric_width = std::max(metric_width, r.metric.size());
    value_width = std::max(value_width, r.value.size());
  }
  std::string section;
  for (const Row& r : rows_) {
    if (r.section != section) {
      section = r.section;
      std::fprintf(out, "\n== %s\n", section.c_str());
    }
    std::fprintf(out, "  %-*s  %-*s", static_cast<int>(metric_width), r.metric.c_str(),
                 static_cast<int>(value_width), r.value.c_str());
    if (!r.target.empty()) {
      std::fprintf(out, "  target %s: %s", r.target.c_str(), VerdictName(r.verdict));
    }
    std::fprintf(out, "\n");
  }
  if (!notes_.empty()) std::fprintf(out, "\n");
  for (const std::string& note : notes_) std::fprintf(out, "* %s\n", note.c_str());
  std::fflush(out);
}

bool Report::WriteMarkdown(const std::string& path, const std::string& heading) const {
  std::ofstream out(path);
  auto cell = [](const std::string& text) { return absl::StrReplaceAll(text, {{"|", "\\|"}}); };
  out << heading << "\n\n| section | figure | value | target | met? |\n|---|---|---|---|---|\n";
  std::string section;
  for (const Row& r : rows_) {
    out << "| " << (r.section != section ? cell(r.section) : "") << " | " << cell(r.metric) << " | "
        << cell(r.value) << " | " << cell(r.target) << " | " << VerdictName(r.verdict) << " |\n";
    section = r.section;
  }
  if (!notes_.empty()) out << "\n";
  for (const std::string& note : notes_) out << "- " << note << "\n";
  return static_cast<bool>(out);
}

bool Report::WriteTsv(const std::string& path) const {
  std::ofstream out(path);
  out << "section\tfigure\tvalue\ttarget\tmet\n";
  for (const Row& r : rows_) {
    out << r.section << "\t" << r.metric << "\t" << r.value << "\t" << r.target << "\t"
        << VerdictName(r.verdict) << "\n";
  }
  return static_cast<bool>(out);
}

}  // namespace sluice::bench
