#include "support/fake_api/fake_api_json.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <utility>

namespace modeldrop::test {
namespace json = boost::json;
namespace {

constexpr std::array<std::pair<FaultKind, std::string_view>, 10> kFaultKindNames{{
    {FaultKind::none, "none"},
    {FaultKind::status, "status"},
    {FaultKind::early_status, "early_status"},
    {FaultKind::reset_after_bytes, "reset_after_bytes"},
    {FaultKind::reset_after_body, "reset_after_body"},
    {FaultKind::stall, "stall"},
    {FaultKind::throttle, "throttle"},
    {FaultKind::malformed_json, "malformed_json"},
    {FaultKind::oversized_response, "oversized_response"},
    {FaultKind::slow, "slow"},
}};

json::object fault_object(const Fault& fault) {
  json::array headers;
  for (const auto& [name, value] : fault.headers)
    headers.push_back(json::array{json::string(name), json::string(value)});
  return json::object{
      {"kind", fault_kind_name(fault.kind)},    {"status", fault.status},
      {"headers", std::move(headers)},          {"body", fault.body},
      {"after_bytes", fault.after_bytes},       {"bytes_per_second", fault.bytes_per_second},
      {"stall_for", fault.stall_for.count()},   {"oversized_bytes", fault.oversized_bytes},
      {"linger_for", fault.linger_for.count()}, {"store_first", fault.store_first},
  };
}

template <class T>
Result<T> number_field(const json::object& object, std::string_view key, T fallback) {
  const auto* found = object.if_contains(key);
  if (found == nullptr) return fallback;
  json::error_code ec;
  const T number = found->to_number<T>(ec);
  if (ec) return make_error("fault field '" + std::string(key) + "' must be a number in range");
  return number;
}

Result<std::string> string_field(const json::object& object, std::string_view key, std::string fallback) {
  const auto* found = object.if_contains(key);
  if (found == nullptr) return Result<std::string>(boost::system::in_place_value, std::move(fallback));
  if (!found->is_string()) return make_error("field '" + std::string(key) + "' must be a string");
  return Result<std::string>(boost::system::in_place_value, found->get_string());
}

Result<Fault> fault_from_value(const json::value& value) {
  if (!value.is_object()) return make_error("a fault must be a JSON object");
  const auto& object = value.get_object();
  for (const auto& [key, unused] : object) {
    static constexpr std::array<std::string_view, 10> kKnown{
        "kind",      "status",          "headers",    "body",       "after_bytes", "bytes_per_second",
        "stall_for", "oversized_bytes", "linger_for", "store_first"};
    if (std::find(kKnown.begin(), kKnown.end(), std::string_view(key)) == kKnown.end()) {
      return make_error("unknown fault field '" + std::string(key) + "'");
    }
  }
  Fault fault;
  const auto kind_name = string_field(object, "kind", "none");
  if (!kind_name) return kind_name.error();
  const auto kind = fault_kind_from_name(*kind_name);
  if (!kind) return make_error("unknown fault kind '" + *kind_name + "'");
  fault.kind = *kind;
  const auto status = number_field<int>(object, "status", fault.status);
  if (!status) return status.error();
  const auto body = string_field(object, "body", "");
  if (!body) return body.error();
  const auto after_bytes = number_field<std::uint64_t>(object, "after_bytes", 0);
  if (!after_bytes) return after_bytes.error();
  const auto bytes_per_second = number_field<std::uint64_t>(object, "bytes_per_second", 0);
  if (!bytes_per_second) return bytes_per_second.error();
  const auto stall_for = number_field<std::int64_t>(object, "stall_for", fault.stall_for.count());
  if (!stall_for) return stall_for.error();
  const auto oversized = number_field<std::uint64_t>(object, "oversized_bytes", fault.oversized_bytes);
  if (!oversized) return oversized.error();
  const auto linger_for = number_field<std::int64_t>(object, "linger_for", fault.linger_for.count());
  if (!linger_for) return linger_for.error();
  fault.status = status.value();
  fault.body = body.value();
  fault.after_bytes = after_bytes.value();
  fault.bytes_per_second = bytes_per_second.value();
  fault.stall_for = std::chrono::milliseconds(stall_for.value());
  fault.oversized_bytes = oversized.value();
  fault.linger_for = std::chrono::milliseconds(linger_for.value());
  if (const auto* store_first = object.if_contains("store_first")) {
    if (!store_first->is_bool()) return make_error("fault field 'store_first' must be true or false");
    fault.store_first = store_first->get_bool();
  }
  if (fault.status < 100 || fault.status > 999) return make_error("fault status must be 100..999");
  if (const auto* headers = object.if_contains("headers")) {
    // Either [["Retry-After", "3"], ...] or {"Retry-After": "3", ...}.
    if (headers->is_array()) {
      for (const auto& pair : headers->get_array()) {
        const auto* items = pair.if_array();
        if (items == nullptr || items->size() != 2 || !(*items)[0].is_string() || !(*items)[1].is_string()) {
          return make_error("fault headers must be [name, value] string pairs");
        }
        fault.headers.emplace_back((*items)[0].get_string(), (*items)[1].get_string());
      }
    } else if (headers->is_object()) {
      for (const auto& [name, header_value] : headers->get_object()) {
        if (!header_value.is_string()) return make_error("fault header values must be strings");
        fault.headers.emplace_back(name, header_value.get_string());
      }
    } else {
      return make_error("fault headers must be an array of pairs or an object");
    }
  }
  return fault;
}

json::object received_file_object(const ReceivedFile& file) {
  json::object object{
      {"id", file.id},         {"filename", file.filename},         {"bytes", file.bytes},
      {"sha256", file.sha256}, {"content_type", file.content_type}, {"created_at", file.created_at},
  };
  object["project_id"] = file.project_id ? json::value(*file.project_id) : json::value(nullptr);
  return object;
}

json::object openai_file_object(const ReceivedFile& file) {
  return json::object{
      {"id", file.id},
      {"object", "file"},
      {"bytes", file.bytes},
      {"created_at", file.created_at},
      {"filename", file.filename},
      {"purpose", "fine-tune"},
      {"status", "uploaded"},
      {"status_details", nullptr},
  };
}

}  // namespace

std::string_view fault_kind_name(FaultKind kind) {
  for (const auto& [k, name] : kFaultKindNames) {
    if (k == kind) return name;
  }
  return "none";
}

std::optional<FaultKind> fault_kind_from_name(std::string_view name) {
  for (const auto& [kind, known] : kFaultKindNames) {
    if (known == name) return kind;
  }
  return std::nullopt;
}

std::string fault_to_json(const Fault& fault) {
  return json::serialize(fault_object(fault));
}

std::string faults_to_json(const std::vector<Fault>& faults) {
  json::array array;
  for (const auto& fault : faults) array.push_back(fault_object(fault));
  return json::serialize(array);
}

Result<std::vector<Fault>> faults_from_json(std::string_view text) {
  json::error_code ec;
  const auto value = json::parse(text, ec);
  if (ec) return make_error("faults: invalid JSON: " + ec.message());
  std::vector<Fault> faults;
  if (value.is_array()) {
    for (const auto& item : value.get_array()) {
      auto fault = fault_from_value(item);
      if (!fault) return fault.error();
      faults.push_back(std::move(*fault));
    }
  } else {
    auto fault = fault_from_value(value);
    if (!fault) return fault.error();
    faults.push_back(std::move(*fault));
  }
  return faults;
}

Result<Fault> fault_from_json(std::string_view text) {
  json::error_code ec;
  const auto value = json::parse(text, ec);
  if (ec) return make_error("fault: invalid JSON: " + ec.message());
  return fault_from_value(value);
}

Result<FaultMix> fault_mix_from_json(std::string_view text) {
  json::error_code ec;
  const auto value = json::parse(text, ec);
  if (ec) return make_error("fault mix: invalid JSON: " + ec.message());
  const auto* object = value.if_object();
  if (object == nullptr) return make_error("fault mix: expected an object");
  for (const auto& [key, unused] : *object) {
    if (key != "probability" && key != "seed" && key != "faults") {
      return make_error("unknown fault mix field '" + std::string(key) + "'");
    }
  }
  FaultMix mix;
  const auto probability = number_field<double>(*object, "probability", 0.0);
  if (!probability) return probability.error();
  if (!(probability.value() >= 0.0 && probability.value() <= 1.0)) {
    return make_error("fault mix probability must be within 0..1");
  }
  mix.probability = probability.value();
  const auto seed = number_field<std::uint64_t>(*object, "seed", 0);
  if (!seed) return seed.error();
  mix.seed = seed.value();
  if (const auto* faults = object->if_contains("faults")) {
    if (!faults->is_array()) return make_error("fault mix 'faults' must be an array");
    for (const auto& item : faults->get_array()) {
      auto fault = fault_from_value(item);
      if (!fault) return fault.error();
      mix.faults.push_back(std::move(*fault));
    }
  }
  return mix;
}

std::string fault_mix_to_json(const FaultMix& mix) {
  json::array faults;
  for (const auto& fault : mix.faults) faults.push_back(fault_object(fault));
  return json::serialize(
      json::object{{"probability", mix.probability}, {"seed", mix.seed}, {"faults", std::move(faults)}});
}

std::string received_files_to_json(const std::vector<ReceivedFile>& files) {
  json::array array;
  for (const auto& file : files) array.push_back(received_file_object(file));
  return json::serialize(array);
}

Result<std::vector<ReceivedFile>> received_files_from_json(std::string_view text) {
  json::error_code ec;
  const auto value = json::parse(text, ec);
  if (ec || !value.is_array()) return make_error("received files: expected a JSON array");
  std::vector<ReceivedFile> files;
  for (const auto& item : value.get_array()) {
    const auto* object = item.if_object();
    if (object == nullptr) return make_error("received files: expected objects");
    ReceivedFile file;
    const auto text_of = [&](std::string_view key) {
      const auto* field = object->if_contains(key);
      return field != nullptr && field->is_string() ? std::string(field->get_string()) : std::string();
    };
    file.id = text_of("id");
    file.filename = text_of("filename");
    file.sha256 = text_of("sha256");
    file.content_type = text_of("content_type");
    if (const auto* project = object->if_contains("project_id"); project != nullptr && project->is_string()) {
      file.project_id = std::string(project->get_string());
    }
    const auto bytes = number_field<std::uint64_t>(*object, "bytes", 0);
    const auto created_at = number_field<std::int64_t>(*object, "created_at", 0);
    if (!bytes || !created_at) return make_error("received files: bad number");
    file.bytes = bytes.value();
    file.created_at = created_at.value();
    files.push_back(std::move(file));
  }
  return files;
}

std::string request_records_to_json(const std::vector<RequestRecord>& records) {
  json::array array;
  for (const auto& record : records) {
    json::object object{
        {"method", record.method},
        {"target", record.target},
        {"has_authorization", record.authorization.has_value()},
        {"authorized", record.authorized},
        {"body_bytes_read", record.body_bytes_read},
        {"status", record.status},
        {"fault", fault_kind_name(record.fault)},
        {"connection_id", record.connection_id},
    };
    object["file_id"] = record.file_id.empty() ? json::value(nullptr) : json::value(record.file_id);
    object["user_agent"] = record.user_agent ? json::value(*record.user_agent) : json::value(nullptr);
    array.push_back(std::move(object));
  }
  return json::serialize(array);
}

Result<ModelBehaviour> model_behaviour_from_json(std::string_view text) {
  json::error_code ec;
  const auto value = json::parse(text, ec);
  if (ec || !value.is_object()) return make_error("model behaviour must be a JSON object");
  const auto& object = value.get_object();
  for (const auto& [key, unused] : object) {
    if (key != "validate_for" && key != "status" && key != "reason") {
      return make_error("unknown model behaviour field '" + std::string(key) + "'");
    }
  }
  ModelBehaviour behaviour;
  const auto validate_for = number_field<std::int64_t>(object, "validate_for", behaviour.validate_for.count());
  if (!validate_for) return validate_for.error();
  const auto status = string_field(object, "status", behaviour.status);
  if (!status) return status.error();
  const auto reason = string_field(object, "reason", "");
  if (!reason) return reason.error();
  if (*validate_for < 0) return make_error("validate_for must not be negative");
  if (*status != "active" && *status != "error") return make_error("status must be \"active\" or \"error\"");
  behaviour.validate_for = std::chrono::milliseconds(*validate_for);
  behaviour.status = *status;
  behaviour.reason = *reason;
  return behaviour;
}

std::string fake_models_to_json(const std::vector<FakeModel>& models) {
  json::array array;
  for (const auto& model : models) {
    json::value description = nullptr;
    if (model.description) description = json::string(*model.description);
    json::value project = nullptr;
    if (model.project_id) project = json::string(*model.project_id);
    array.push_back(json::object{{"name", model.name},
                                 {"base_model", model.base_model},
                                 {"source", model.source},
                                 {"description", std::move(description)},
                                 {"project_id", std::move(project)},
                                 {"status", model.status},
                                 {"created_at", model.created_at}});
  }
  return json::serialize(array);
}

std::string openai_file_json(const ReceivedFile& file) {
  return json::serialize(openai_file_object(file));
}

}  // namespace modeldrop::test
