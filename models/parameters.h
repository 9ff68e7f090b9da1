#ifndef SLUICE_MODELS_PARAMETERS_H_
#define SLUICE_MODELS_PARAMETERS_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/map.h"
#include "sluice/v1/inference.pb.h"

namespace sluice {

// ParameterSpec declares one parameter a model accepts: name, type, default
// and valid range. The framework validates every request against a model's
// specs before the model sees it, and ListModels publishes them.
class ParameterSpec {
 public:
  enum class Type { kBool, kInt64, kDouble, kString };
  using Value = std::variant<bool, int64_t, double, std::string>;

  static ParameterSpec Bool(std::string name, bool default_value, std::string description);
  static ParameterSpec Int64(std::string name, int64_t default_value, int64_t min, int64_t max,
                             std::string description);
  static ParameterSpec Double(std::string name, double default_value, double min, double max,
                              std::string description);
  static ParameterSpec String(std::string name, std::string default_value, size_t max_length,
                              std::string description);

  const std::string& name() const { return name_; }
  Type type() const { return type_; }
  // type_name: "bool", "int64", "double" or "string": the Parameter field to set.
  absl::string_view type_name() const;
  // description: the model's text plus the range and default, for people.
  std::string description() const;

  // Check: the value `param` carries for this spec, or INVALID_ARGUMENT naming
  // the model, the parameter, what was expected and what was sent.
  absl::StatusOr<Value> Check(absl::string_view model, const v1::Parameter& param) const;

  const Value& default_value() const { return default_; }

 private:
  ParameterSpec(std::string name, Type type, Value default_value, std::string description)
      : name_(std::move(name)),
        type_(type),
        default_(std::move(default_value)),
        description_(std::move(description)) {}

  std::string name_;
  Type type_;
  Value default_;
  std::string description_;
  int64_t int_min_ = 0, int_max_ = 0;
  double double_min_ = 0, double_max_ = 0;
  size_t max_length_ = 0;
};

// ParameterValues: a request's parameters after validation, defaults filled in.
class ParameterValues {
 public:
  // Get*: the value of a declared parameter. Asking for a name the model did
  // not declare, or with the wrong type, is a programming error (it aborts).
  bool GetBool(absl::string_view name) const;
  int64_t GetInt64(absl::string_view name) const;
  double GetDouble(absl::string_view name) const;
  const std::string& GetString(absl::string_view name) const;

  // IsSet: whether the client sent this parameter (rather than the default).
  bool IsSet(absl::string_view name) const;

 private:
  friend class ParameterSchema;
  struct Entry {
    ParameterSpec::Value value;
    bool set_by_client;
  };
  const Entry& Find(absl::string_view name) const;
  absl::flat_hash_map<std::string, Entry> values_;
};

// ParameterSchema: the set of parameters one model accepts.
class ParameterSchema {
 public:
  ParameterSchema() = default;
  ParameterSchema(std::initializer_list<ParameterSpec> specs)
      : ParameterSchema(std::vector<ParameterSpec>(specs)) {}
  explicit ParameterSchema(std::vector<ParameterSpec> specs);

  // Parse: validates `params` for `model`. Unknown names, wrong types and out
  // of range values are INVALID_ARGUMENT with a message saying what to send.
  absl::StatusOr<ParameterValues> Parse(
      absl::string_view model,
      const google::protobuf::Map<std::string, v1::Parameter>& params) const;

  const std::vector<ParameterSpec>& specs() const { return specs_; }

 private:
  std::vector<ParameterSpec> specs_;
};

}  // namespace sluice

#endif  // SLUICE_MODELS_PARAMETERS_H_
