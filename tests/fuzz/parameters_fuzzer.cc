// Fuzzes parameter validation (ParameterSchema::Parse, ParameterSpec::Check)
// structure-aware: the input chooses a parameters map, mostly of declared
// names with values at, just inside and just outside each declared range, and
// the target judges each entry independently of the code under test.
//
// Invariants:
//   - The map is accepted exactly when every entry names a declared parameter,
//     has its type (an int64 where a double is declared is fine), lies in its
//     range (finite, for doubles) and, for strings, is short enough.
//   - Accepted: each declared parameter reads back as sent (IsSet true), or
//     as its default when not sent (IsSet false).
//   - Rejected: INVALID_ARGUMENT naming the model and one offending parameter.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "glog/logging.h"
#include "models/parameters.h"
#include "tests/fuzz/fuzz_util.h"

namespace sluice {
namespace {

using Type = ParameterSpec::Type;
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Decl: one declared parameter, with the range the oracle judges by.
struct Decl {
  std::string name;
  Type type = Type::kBool;
  int64_t int_default = 0, int_min = 0, int_max = 0;
  double double_default = 0, double_min = 0, double_max = 0;
  std::string string_default;
  size_t max_length = 0;
  bool bool_default = false;

  ParameterSpec Spec() const {
    switch (type) {
      case Type::kBool:
        return ParameterSpec::Bool(name, bool_default, "a flag");
      case Type::kInt64:
        return ParameterSpec::Int64(name, int_default, int_min, int_max, "an integer");
      case Type::kDouble:
        return ParameterSpec::Double(name, double_default, double_min, double_max, "a number");
      case Type::kString:
        return ParameterSpec::String(name, string_default, max_length, "a text");
    }
    LOG(FATAL) << "unknown type";
  }
};

Decl Bool(std::string name, bool def) {
  Decl d;
  d.name = std::move(name);
  d.type = Type::kBool;
  d.bool_default = def;
  return d;
}
Decl Int(std::string name, int64_t def, int64_t min, int64_t max) {
  Decl d;
  d.name = std::move(name);
  d.type = Type::kInt64;
  d.int_default = def, d.int_min = min, d.int_max = max;
  return d;
}
Decl Dbl(std::string name, double def, double min, double max) {
  Decl d;
  d.name = std::move(name);
  d.type = Type::kDouble;
  d.double_default = def, d.double_min = min, d.double_max = max;
  return d;
}
Decl Str(std::string name, std::string def, size_t max_length) {
  Decl d;
  d.name = std::move(name);
  d.type = Type::kString;
  d.string_default = std::move(def), d.max_length = max_length;
  return d;
}

// The declarations: the shapes the built-in models use, plus the extremes.
const std::vector<Decl>& Decls() {
  static const auto* const kDecls = new std::vector<Decl>{
      Bool("stream", false),
      Int("max_tokens", 128, 1, 4096),
      Int("fail_at", -1, -1, 100'000'000),
      Int("seed", 0, kI64Min, kI64Max),
      Int("exactly", 7, 7, 7),
      Int("negative", -5, -10, -1),
      Dbl("temperature", 0.8, 0.0, 5.0),
      Dbl("gain", 0, -1e300, 1e300),
      Dbl("unbounded", 0, -kInf, kInf),
      Dbl("pinned", 1.5, 1.5, 1.5),
      Str("label", "none", 8),
      Str("nothing", "", 0),
  };
  return *kDecls;
}

const ParameterSchema& Schema() {
  static const ParameterSchema* const kSchema = [] {
    std::vector<ParameterSpec> specs;
    for (const Decl& d : Decls()) specs.push_back(d.Spec());
    return new ParameterSchema(std::move(specs));
  }();
  return *kSchema;
}

const Decl* Find(const std::string& name) {
  for (const Decl& d : Decls()) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

int64_t IntNear(fuzz::FuzzInput& in, const Decl* d) {
  const int64_t min = d ? d->int_min : 0, max = d ? d->int_max : 0;
  switch (in.Byte() % 7) {
    case 0:
      return min;
    case 1:
      return max;
    case 2:
      return min == kI64Min ? kI64Max : min - 1;
    case 3:
      return max == kI64Max ? kI64Min : max + 1;
    case 4:
      return static_cast<int8_t>(in.Byte());
    default:
      return static_cast<int64_t>(in.Uint64());
  }
}

double DoubleNear(fuzz::FuzzInput& in, const Decl* d) {
  const double min = d ? d->double_min : 0, max = d ? d->double_max : 1;
  switch (in.Byte() % 9) {
    case 0:
      return min;
    case 1:
      return max;
    case 2:
      return std::nextafter(min, -kInf);
    case 3:
      return std::nextafter(max, kInf);
    case 4:
      return std::numeric_limits<double>::quiet_NaN();
    case 5:
      return in.Bool() ? kInf : -kInf;
    case 6:
      return static_cast<int8_t>(in.Byte()) / 16.0;
    default:
      return in.Double();
  }
}

v1::Parameter MakeValue(fuzz::FuzzInput& in, const Decl* d) {
  v1::Parameter p;
  switch (in.Byte() % 5) {
    case 0:
      break;  // no value set
    case 1:
      p.set_bool_param(in.Bool());
      break;
    case 2:
      p.set_int64_param(IntNear(in, d));
      break;
    case 3:
      p.set_double_param(DoubleNear(in, d));
      break;
    default: {
      const size_t around = d ? d->max_length : 4;
      p.set_string_param(std::string(around + in.Byte() % 3, 'x') + in.String(4));
      if (in.Bool()) p.mutable_string_param()->resize(around);
    }
  }
  return p;
}

// Valid: the oracle's judgement of one entry.
bool Valid(const Decl* d, const v1::Parameter& p) {
  if (d == nullptr) return false;
  switch (d->type) {
    case Type::kBool:
      return p.has_bool_param();
    case Type::kInt64:
      return p.has_int64_param() && p.int64_param() >= d->int_min && p.int64_param() <= d->int_max;
    case Type::kDouble: {
      double v;
      if (p.has_double_param()) {
        v = p.double_param();
      } else if (p.has_int64_param()) {
        v = static_cast<double>(p.int64_param());
      } else {
        return false;
      }
      return std::isfinite(v) && v >= d->double_min && v <= d->double_max;
    }
    case Type::kString:
      return p.has_string_param() && p.string_param().size() <= d->max_length;
  }
  return false;
}

void ExpectValue(const ParameterValues& values, const Decl& d, const v1::Parameter* sent) {
  CHECK_EQ(values.IsSet(d.name), sent != nullptr) << d.name;
  switch (d.type) {
    case Type::kBool:
      CHECK_EQ(values.GetBool(d.name), sent ? sent->bool_param() : d.bool_default) << d.name;
      break;
    case Type::kInt64:
      CHECK_EQ(values.GetInt64(d.name), sent ? sent->int64_param() : d.int_default) << d.name;
      break;
    case Type::kDouble: {
      double want = d.double_default;
      if (sent != nullptr) {
        want = sent->has_double_param() ? sent->double_param()
                                        : static_cast<double>(sent->int64_param());
      }
      const double got = values.GetDouble(d.name);
      CHECK(got == want) << d.name << ": got " << got << ", sent " << want;
      CHECK(got >= d.double_min && got <= d.double_max) << d.name << " = " << got;
      break;
    }
    case Type::kString:
      CHECK_EQ(values.GetString(d.name), sent ? sent->string_param() : d.string_default) << d.name;
      CHECK_LE(values.GetString(d.name).size(), d.max_length) << d.name;
      break;
  }
}

}  // namespace
}  // namespace sluice

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sluice;  // NOLINT: a test driver
  fuzz::FuzzInput in(data, size);
  const std::string model = in.Bool() ? "charlm" : in.String(12);
  google::protobuf::Map<std::string, v1::Parameter> params;
  const int entries = in.Byte() % 8;
  for (int i = 0; i < entries; ++i) {
    std::string name = in.Byte() % 4 != 0 ? in.Pick(Decls()).name : in.String(12);
    const Decl* decl = Find(name);
    params[name] = MakeValue(in, decl);
  }

  std::vector<std::string> offending;
  for (const auto& [name, param] : params) {
    const Decl* decl = Find(name);
    // Check alone agrees with the oracle.
    if (decl != nullptr) {
      const ParameterSpec& spec = Schema().specs()[decl - Decls().data()];
      absl::StatusOr<ParameterSpec::Value> checked = spec.Check(model, param);
      CHECK_EQ(checked.ok(), Valid(decl, param))
          << name << " = " << param.ShortDebugString() << ": " << checked.status();
      if (!checked.ok()) fuzz::ExpectRejection(checked.status(), {model, name}, name);
    }
    if (!Valid(decl, param)) offending.push_back(decl ? name : absl::CEscape(name));
  }

  absl::StatusOr<ParameterValues> values = Schema().Parse(model, params);
  if (!offending.empty()) {
    CHECK(!values.ok()) << "accepted an invalid parameter, e.g. " << offending[0];
    fuzz::ExpectRejection(values.status(), {model}, model);
    bool names_one = false;
    for (const std::string& name : offending) {
      names_one = names_one || absl::StrContains(values.status().message(), name);
    }
    CHECK(names_one) << "\"" << values.status().message() << "\" names no offending parameter";
    return 0;
  }
  CHECK(values.ok()) << values.status();
  for (const Decl& d : Decls()) {
    auto it = params.find(d.name);
    ExpectValue(*values, d, it == params.end() ? nullptr : &it->second);
  }
  return 0;
}
