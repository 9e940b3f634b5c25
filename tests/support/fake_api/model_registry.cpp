#include "support/fake_api/model_registry.hpp"

#include <boost/json.hpp>

#include <array>

namespace modeldrop::test {
namespace json = boost::json;
namespace {

std::string current_status(const FakeModel& model, std::chrono::steady_clock::time_point now) {
  return now < model.settles_at ? "validating" : model.final_status;
}

json::object model_object(const FakeModel& model, std::chrono::steady_clock::time_point now) {
  const auto status = current_status(model, now);
  json::value reason = nullptr;
  if (status == "error") reason = json::string(model.final_reason);
  json::value description = nullptr;
  if (model.description) description = json::string(*model.description);
  json::value project = nullptr;
  if (model.project_id) project = json::string(*model.project_id);
  return json::object{
      {"object", "model"},
      {"name", model.name},
      {"base_model", model.base_model},
      {"source", model.source},
      {"file_id", model.source},
      {"description", std::move(description)},
      {"ai_project_id", std::move(project)},
      {"status", status},
      {"status_reason", std::move(reason)},
      {"created_at", model.created_at},
  };
}

JsonAnswer detail(int status, std::string_view message) {
  return {status, json::serialize(json::object{{"detail", message}})};
}

// FastAPI's 422 for one field of the JSON body.
json::object field_error(std::string_view type, std::string_view field, std::string_view message,
                         const json::value& input) {
  return json::object{{"type", type}, {"loc", json::array{"body", field}}, {"msg", message}, {"input", input}};
}

}  // namespace

std::string model_json(const FakeModel& model, std::chrono::steady_clock::time_point now) {
  return json::serialize(model_object(model, now));
}

JsonAnswer ModelRegistry::create(std::string_view body, const std::optional<std::string>& project_id,
                                 const FileExists& file_exists, SteadyTime now, std::int64_t unix_now) {
  json::error_code ec;
  const auto value = json::parse(body, ec);
  if (ec || !value.is_object()) {
    const json::array errors{json::object{{"type", "json_invalid"},
                                          {"loc", json::array{"body", 0}},
                                          {"msg", "JSON decode error"},
                                          {"input", json::object{}}}};
    return {422, json::serialize(json::object{{"detail", errors}})};
  }
  const auto& object = value.get_object();
  json::array errors;
  static constexpr std::array<std::string_view, 3> kRequired{"name", "base_model", "source"};
  for (const auto field : kRequired) {
    const auto* found = object.if_contains(field);
    if (found == nullptr) {
      errors.push_back(field_error("missing", field, "Field required", object));
    } else if (!found->is_string()) {
      errors.push_back(field_error("string_type", field, "Input should be a valid string", *found));
    }
  }
  const auto* description = object.if_contains("description");
  if (description != nullptr && !description->is_string() && !description->is_null()) {
    errors.push_back(field_error("string_type", "description", "Input should be a valid string", *description));
  }
  if (!errors.empty()) return {422, json::serialize(json::object{{"detail", std::move(errors)}})};

  FakeModel model;
  model.name = std::string(object.at("name").get_string());
  model.base_model = std::string(object.at("base_model").get_string());
  model.source = std::string(object.at("source").get_string());
  if (description != nullptr && description->is_string()) model.description = std::string(description->get_string());
  model.project_id = project_id;
  if (model.name.empty()) {
    return {422, json::serialize(json::object{
                     {"detail", json::array{field_error("string_too_short", "name",
                                                        "String should have at least 1 character", "")}}})};
  }
  if (!file_exists(model.source)) return detail(400, "File " + model.source + " not found");
  if (models_.contains(model.name)) return detail(409, "Model with name '" + model.name + "' already exists");
  model.created_at = unix_now;
  model.settles_at = now + behaviour_.validate_for;
  model.final_status = behaviour_.status;
  model.final_reason = behaviour_.reason;
  auto answer = JsonAnswer{200, model_json(model, now)};
  add(std::move(model));
  return answer;
}

JsonAnswer ModelRegistry::get(std::string_view name, SteadyTime now) const {
  const auto found = models_.find(name);
  if (found == models_.end()) return detail(404, "Model not found");
  return {200, model_json(found->second, now)};
}

JsonAnswer ModelRegistry::list(const std::optional<std::string>& project_id, SteadyTime now) const {
  json::array data;
  for (const auto& name : order_) {
    const auto& model = models_.at(name);
    if (project_id && model.project_id != project_id) continue;
    data.push_back(model_object(model, now));
  }
  return {200, json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}})};
}

void ModelRegistry::add(FakeModel model) {
  const auto name = model.name;
  if (models_.insert_or_assign(name, std::move(model)).second) order_.push_back(name);
}

void ModelRegistry::clear() {
  models_.clear();
  order_.clear();
  behaviour_ = ModelBehaviour{};
}

std::vector<FakeModel> ModelRegistry::snapshot(SteadyTime now) const {
  std::vector<FakeModel> models;
  for (const auto& name : order_) {
    models.push_back(models_.at(name));
    models.back().status = current_status(models.back(), now);
  }
  return models;
}

}  // namespace modeldrop::test
