// Fuzzes ParseModelOptions, the parser of the server's --model_options flag
// ("synthetic:workers=4,max_active=64;charlm:workers=1").
//
// Invariants:
//   - A rejection is INVALID_ARGUMENT with a message naming the flag.
//   - Accepted model names are non-empty and have no surrounding whitespace.
//   - Nothing in accepted text is ignored: after each "name:" there is no
//     other ':' and each key=value item has one '='  (a typo such as "a:workers=4:b:workers=1" or
//     "workers=4=8" must be refused, not half-applied).
//   - Round trip: printing the parsed options back in the flag's syntax and
//     parsing that gives the same options.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "service/server_main.h"
#include "tests/fuzz/fuzz_util.h"

namespace sluice {
namespace {

bool Explicit(const ModelOptions& o, absl::string_view key) {
  return std::find(o.generator_keys.begin(), o.generator_keys.end(), key) != o.generator_keys.end();
}

bool SameOptions(const ModelOptions& a, const ModelOptions& b) {
  for (absl::string_view key : {"workers", "max_active"}) {
    if (Explicit(a, key) != Explicit(b, key)) return false;
  }
  if (Explicit(a, "workers") && a.executor.workers != b.executor.workers) return false;
  if (Explicit(a, "max_active") && a.executor.max_active != b.executor.max_active) return false;
  return a.executor.queue_capacity == b.executor.queue_capacity &&
         a.batch.max_batch == b.batch.max_batch && a.batch.max_sequences == b.batch.max_sequences &&
         a.batch.batch_wait == b.batch.batch_wait &&
         a.batch.max_state_bytes == b.batch.max_state_bytes;
}

bool Same(const std::map<std::string, ModelOptions>& a,
          const std::map<std::string, ModelOptions>& b) {
  if (a.size() != b.size()) return false;
  for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j) {
    if (i->first != j->first || !SameOptions(i->second, j->second)) return false;
  }
  return true;
}

// Print: the options in the flag's syntax: the keys that were given (the
// executor keys not given come from the defaults, which differ on the way
// back), and queue_capacity always.
std::string Print(const std::map<std::string, ModelOptions>& options) {
  std::vector<std::string> entries;
  for (const auto& [name, o] : options) {
    std::vector<std::string> items;
    if (Explicit(o, "workers")) items.push_back(absl::StrCat("workers=", o.executor.workers));
    if (Explicit(o, "max_active")) {
      items.push_back(absl::StrCat("max_active=", o.executor.max_active));
    }
    items.push_back(absl::StrCat("queue_capacity=", o.executor.queue_capacity));
    if (o.batch.max_batch) items.push_back(absl::StrCat("max_batch=", *o.batch.max_batch));
    if (o.batch.max_sequences) {
      items.push_back(absl::StrCat("max_sequences=", *o.batch.max_sequences));
    }
    if (o.batch.batch_wait) {
      items.push_back(
          absl::StrCat("batch_wait_us=", absl::ToInt64Microseconds(*o.batch.batch_wait)));
    }
    if (o.batch.max_state_bytes) {
      items.push_back(absl::StrCat("max_state_bytes=", *o.batch.max_state_bytes));
    }
    entries.push_back(absl::StrCat(name, ":", absl::StrJoin(items, ",")));
  }
  return absl::StrJoin(entries, ";");
}

// Unaccounted: what an accepted spec must not contain after each entry's
// "name:": another ':', or a key=value item without exactly one '='.
std::string Unaccounted(absl::string_view spec) {
  for (absl::string_view entry : absl::StrSplit(spec, ';', absl::SkipWhitespace())) {
    const size_t colon = entry.find(':');
    if (colon == absl::string_view::npos) return absl::StrCat("entry without ':' ", entry);
    const absl::string_view items = entry.substr(colon + 1);
    if (absl::StrContains(items, ':')) return absl::StrCat("second ':' in ", entry);
    for (absl::string_view kv : absl::StrSplit(items, ',', absl::SkipWhitespace())) {
      if (std::count(kv.begin(), kv.end(), '=') != 1) return absl::StrCat("item ", kv);
    }
  }
  return "";
}

}  // namespace
}  // namespace sluice

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sluice;  // NOLINT: a test driver
  const absl::string_view spec(reinterpret_cast<const char*>(data), size);
  const std::string shown = absl::CHexEscape(spec);
  const ExecutorOptions defaults{3, 100, 50};
  auto parsed = ParseModelOptions(spec, defaults);
  if (!parsed.ok()) {
    fuzz::ExpectRejection(parsed.status(), {"--model_options"}, spec);
    return 0;
  }
  for (const auto& [name, options] : *parsed) {
    CHECK(!name.empty()) << shown;
    CHECK_EQ(name, absl::StripAsciiWhitespace(name)) << shown;
  }
  const std::string unaccounted = Unaccounted(spec);
  CHECK(unaccounted.empty()) << "accepted \"" << shown
                             << "\" but ignored part of it: " << absl::CHexEscape(unaccounted);

  const std::string printed = Print(*parsed);
  auto again = ParseModelOptions(printed, ExecutorOptions{7, 7, 7});
  CHECK(again.ok()) << "\"" << shown << "\" was accepted, its printout \""
                    << absl::CHexEscape(printed) << "\" not: " << again.status();
  CHECK(Same(*again, *parsed)) << "\"" << shown << "\" and its printout \"" << printed
                               << "\" parse differently";
  return 0;
}
