// Fuzzes ParseParameter, which turns sluice_cli's --param text into a request
// parameter.
//
// Invariants:
//   - A rejection is INVALID_ARGUMENT with a message.
//   - An accepted parameter has a non-empty name: the text before the first
//     ':' or '=' (so it contains neither), and a value of some type.
//   - Round trip: printing the parameter back as "name:type=value" and parsing
//     that gives the same name, type and value (doubles bit for bit).
//   - An untyped value parses as the type its text names: "true"/"false" as a
//     bool, anything ":int=" accepts as an int64.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/sluice_client.h"
#include "glog/logging.h"
#include "tests/fuzz/fuzz_util.h"

namespace sluice {
namespace {

std::string Typed(const std::string& name, const v1::Parameter& p) {
  switch (p.parameter_choice_case()) {
    case v1::Parameter::kBoolParam:
      return absl::StrCat(name, ":bool=", p.bool_param() ? "true" : "false");
    case v1::Parameter::kInt64Param:
      return absl::StrCat(name, ":int=", p.int64_param());
    case v1::Parameter::kDoubleParam:
      return absl::StrFormat("%s:double=%.17g", name, p.double_param());
    case v1::Parameter::kStringParam:
      return absl::StrCat(name, ":string=", p.string_param());
    case v1::Parameter::PARAMETER_CHOICE_NOT_SET:
      break;
  }
  LOG(FATAL) << "parameter without a value";
}

bool SameDouble(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::memcmp(&a, &b, sizeof(a)) == 0;
}

bool Same(const v1::Parameter& a, const v1::Parameter& b) {
  if (a.parameter_choice_case() != b.parameter_choice_case()) return false;
  switch (a.parameter_choice_case()) {
    case v1::Parameter::kBoolParam:
      return a.bool_param() == b.bool_param();
    case v1::Parameter::kInt64Param:
      return a.int64_param() == b.int64_param();
    case v1::Parameter::kDoubleParam:
      return SameDouble(a.double_param(), b.double_param());
    case v1::Parameter::kStringParam:
      return a.string_param() == b.string_param();
    case v1::Parameter::PARAMETER_CHOICE_NOT_SET:
      break;
  }
  return true;
}

}  // namespace
}  // namespace sluice

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sluice;  // NOLINT: a test driver
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string shown = absl::CHexEscape(text);
  auto parsed = ParseParameter(text);
  if (!parsed.ok()) {
    fuzz::ExpectRejection(parsed.status(), {}, text);
    return 0;
  }
  const auto& [name, param] = *parsed;
  CHECK(!name.empty()) << "accepted \"" << shown << "\" with an empty name";
  CHECK(!absl::StrContains(name, ':') && !absl::StrContains(name, '='))
      << "name \"" << absl::CHexEscape(name) << "\" from \"" << shown << "\"";
  CHECK(absl::StartsWith(text, name)) << shown;
  CHECK_NE(param.parameter_choice_case(), v1::Parameter::PARAMETER_CHOICE_NOT_SET) << shown;

  const std::string typed = Typed(name, param);
  auto again = ParseParameter(typed);
  CHECK(again.ok()) << "\"" << shown << "\" was accepted but its typed spelling \""
                    << absl::CHexEscape(typed) << "\" is not: " << again.status();
  CHECK_EQ(again->first, name) << typed;
  CHECK(Same(again->second, param))
      << "\"" << shown << "\" parsed as " << param.ShortDebugString() << ", \"" << typed << "\" as "
      << again->second.ShortDebugString();

  if (text.size() > name.size() && text[name.size()] == '=') {  // untyped
    const absl::string_view value = text.substr(name.size() + 1);
    if (value == "true" || value == "false") {
      CHECK(param.has_bool_param()) << shown;
    } else if (auto as_int = ParseParameter(absl::StrCat("n:int=", value)); as_int.ok()) {
      CHECK(param.has_int64_param() && param.int64_param() == as_int->second.int64_param())
          << shown;
    }
  }
  return 0;
}
