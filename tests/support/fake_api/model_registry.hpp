#pragma once

// The fake's custom models: what POST /v0/models, GET /v0/models/{name} and GET /v0/models
// answer, as pure functions of the registry and the time (the server adds HTTP and faults).
// Not thread-safe: the server calls it under its state mutex.

#include "support/fake_api/fake_api.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modeldrop::test {

// An HTTP answer with a JSON body.
struct JsonAnswer {
  int status = 200;
  std::string body;
};

class ModelRegistry {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;
  using FileExists = std::function<bool(std::string_view file_id)>;

  // POST /v0/models with `body`: 200 with the model (status `validating`); 422 for a body
  // that is not {name, base_model, source[, description]} with strings (FastAPI's words);
  // 400 when `source` names no stored file; 409 when the name is taken.
  JsonAnswer create(std::string_view body, const std::optional<std::string>& project_id, const FileExists& file_exists,
                    SteadyTime now, std::int64_t unix_now);
  // GET /v0/models/{name}: the model as it is at `now`, or 404.
  JsonAnswer get(std::string_view name, SteadyTime now) const;
  // GET /v0/models[?ai_project_id=]: {"object":"list","data":[...]} oldest first.
  JsonAnswer list(const std::optional<std::string>& project_id, SteadyTime now) const;

  void add(FakeModel model);
  void set_behaviour(ModelBehaviour behaviour) { behaviour_ = std::move(behaviour); }
  void clear();
  [[nodiscard]] std::vector<FakeModel> snapshot(SteadyTime now) const;

 private:
  std::map<std::string, FakeModel, std::less<>> models_;
  std::vector<std::string> order_;  // names, in creation order
  ModelBehaviour behaviour_;
};

// The API's JSON for a model at `now` (status computed from its validation).
std::string model_json(const FakeModel& model, std::chrono::steady_clock::time_point now);

}  // namespace modeldrop::test
