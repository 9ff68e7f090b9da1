#include "models/parameters.h"

#include <cmath>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"

namespace sluice {
namespace {

absl::string_view SentField(const v1::Parameter& param) {
  switch (param.parameter_choice_case()) {
    case v1::Parameter::kBoolParam:
      return "bool_param";
    case v1::Parameter::kInt64Param:
      return "int64_param";
    case v1::Parameter::kDoubleParam:
      return "double_param";
    case v1::Parameter::kStringParam:
      return "string_param";
    case v1::Parameter::PARAMETER_CHOICE_NOT_SET:
      break;
  }
  return "no value";
}

std::string FormatDouble(double v) { return absl::StrCat(v); }

}  // namespace

ParameterSpec ParameterSpec::Bool(std::string name, bool default_value, std::string description) {
  return ParameterSpec(std::move(name), Type::kBool, default_value, std::move(description));
}

ParameterSpec ParameterSpec::Int64(std::string name, int64_t default_value, int64_t min,
                                   int64_t max, std::string description) {
  CHECK_LE(min, max) << name;
  CHECK(default_value >= min && default_value <= max) << name << ": default out of range";
  ParameterSpec spec(std::move(name), Type::kInt64, default_value, std::move(description));
  spec.int_min_ = min;
  spec.int_max_ = max;
  return spec;
}

ParameterSpec ParameterSpec::Double(std::string name, double default_value, double min, double max,
                                    std::string description) {
  CHECK_LE(min, max) << name;
  CHECK(default_value >= min && default_value <= max) << name << ": default out of range";
  ParameterSpec spec(std::move(name), Type::kDouble, default_value, std::move(description));
  spec.double_min_ = min;
  spec.double_max_ = max;
  return spec;
}

ParameterSpec ParameterSpec::String(std::string name, std::string default_value, size_t max_length,
                                    std::string description) {
  CHECK_LE(default_value.size(), max_length) << name;
  ParameterSpec spec(std::move(name), Type::kString, std::move(default_value),
                     std::move(description));
  spec.max_length_ = max_length;
  return spec;
}

absl::string_view ParameterSpec::type_name() const {
  switch (type_) {
    case Type::kBool:
      return "bool";
    case Type::kInt64:
      return "int64";
    case Type::kDouble:
      return "double";
    case Type::kString:
      return "string";
  }
  return "unknown";
}

std::string ParameterSpec::description() const {
  switch (type_) {
    case Type::kBool:
      return absl::StrCat(description_, " (default ", std::get<bool>(default_) ? "true" : "false",
                          ")");
    case Type::kInt64:
      return absl::StrCat(description_, " (", int_min_, "..", int_max_, ", default ",
                          std::get<int64_t>(default_), ")");
    case Type::kDouble:
      return absl::StrCat(description_, " (", FormatDouble(double_min_), "..",
                          FormatDouble(double_max_), ", default ",
                          FormatDouble(std::get<double>(default_)), ")");
    case Type::kString:
      return absl::StrCat(description_, " (at most ", max_length_, " bytes, default \"",
                          std::get<std::string>(default_), "\")");
  }
  return description_;
}

absl::StatusOr<ParameterSpec::Value> ParameterSpec::Check(absl::string_view model,
                                                          const v1::Parameter& param) const {
  auto wrong_type = [&]() {
    return absl::InvalidArgumentError(absl::StrCat("parameter ", name_, " of model ", model,
                                                   " must be set as ", type_name(), "_param, got ",
                                                   SentField(param)));
  };
  switch (type_) {
    case Type::kBool:
      if (!param.has_bool_param()) return wrong_type();
      return Value(param.bool_param());
    case Type::kInt64: {
      if (!param.has_int64_param()) return wrong_type();
      const int64_t v = param.int64_param();
      if (v < int_min_ || v > int_max_) {
        return absl::InvalidArgumentError(absl::StrCat("parameter ", name_, " of model ", model,
                                                       " must be ", int_min_, "..", int_max_,
                                                       ", got ", v));
      }
      return Value(v);
    }
    case Type::kDouble: {
      double v;
      if (param.has_double_param()) {
        v = param.double_param();
      } else if (param.has_int64_param()) {
        // Integers are accepted where a double is expected: clients in
        // dynamically typed languages often send 1 for 1.0.
        v = static_cast<double>(param.int64_param());
      } else {
        return wrong_type();
      }
      if (!std::isfinite(v) || v < double_min_ || v > double_max_) {
        return absl::InvalidArgumentError(absl::StrCat(
            "parameter ", name_, " of model ", model, " must be ", FormatDouble(double_min_), "..",
            FormatDouble(double_max_), ", got ", FormatDouble(v)));
      }
      return Value(v);
    }
    case Type::kString: {
      if (!param.has_string_param()) return wrong_type();
      if (param.string_param().size() > max_length_) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter ", name_, " of model ", model, " must be at most ", max_length_,
                         " bytes, got ", param.string_param().size()));
      }
      return Value(param.string_param());
    }
  }
  return absl::InternalError("unknown parameter type");
}

const ParameterValues::Entry& ParameterValues::Find(absl::string_view name) const {
  auto it = values_.find(name);
  CHECK(it != values_.end()) << "parameter " << name << " was not declared by the model";
  return it->second;
}

bool ParameterValues::GetBool(absl::string_view name) const {
  return std::get<bool>(Find(name).value);
}
int64_t ParameterValues::GetInt64(absl::string_view name) const {
  return std::get<int64_t>(Find(name).value);
}
double ParameterValues::GetDouble(absl::string_view name) const {
  return std::get<double>(Find(name).value);
}
const std::string& ParameterValues::GetString(absl::string_view name) const {
  return std::get<std::string>(Find(name).value);
}
bool ParameterValues::IsSet(absl::string_view name) const { return Find(name).set_by_client; }

ParameterSchema::ParameterSchema(std::vector<ParameterSpec> specs) : specs_(std::move(specs)) {
  absl::flat_hash_map<std::string, int> seen;
  for (const ParameterSpec& spec : specs_) {
    CHECK(seen.emplace(spec.name(), 0).second) << "parameter declared twice: " << spec.name();
  }
}

absl::StatusOr<ParameterValues> ParameterSchema::Parse(
    absl::string_view model,
    const google::protobuf::Map<std::string, v1::Parameter>& params) const {
  ParameterValues values;
  for (const ParameterSpec& spec : specs_) {
    values.values_.emplace(spec.name(), ParameterValues::Entry{spec.default_value(), false});
  }
  for (const auto& [name, param] : params) {
    auto it = values.values_.find(name);
    if (it == values.values_.end()) {
      std::vector<std::string> known;
      for (const ParameterSpec& spec : specs_) known.push_back(spec.name());
      return absl::InvalidArgumentError(
          absl::StrCat("model ", model, " has no parameter named \"", absl::CEscape(name),
                       "\"; it accepts: ", known.empty() ? "none" : absl::StrJoin(known, ", ")));
    }
    const ParameterSpec* spec = nullptr;
    for (const ParameterSpec& s : specs_) {
      if (s.name() == name) spec = &s;
    }
    absl::StatusOr<ParameterSpec::Value> value = spec->Check(model, param);
    if (!value.ok()) return value.status();
    it->second = ParameterValues::Entry{*std::move(value), true};
  }
  return values;
}

}  // namespace sluice
