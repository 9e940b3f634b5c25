// The fake's custom models (POST /v0/models, GET /v0/models[/{name}]), driven by curl over TLS.

#include "fake_api_fixture.hpp"

#include <thread>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;

class FakeApiModelsTest : public FakeApiTest {
 protected:
  std::string upload_file(const std::string& name = "lora.zip") {
    const auto file = temp_.write(name, "adapter bytes");
    const auto answer = upload(file, name);
    EXPECT_EQ(answer.status, 200) << answer.body;
    return std::string(json_object(answer.body).at("id").as_string());
  }
  CurlAnswer create(const std::string& body, std::string_view query = "") {
    return curl_answer({"-H", "Authorization: Bearer test-token", "-H", "Content-Type: application/json", "--data",
                        body, url("/v0/models" + std::string(query))});
  }
  CurlAnswer get(std::string_view name) {
    return curl_answer({"-H", "Authorization: Bearer test-token", url("/v0/models/" + std::string(name))});
  }
  // The model's status once it leaves `validating`, polled for at most 10 s.
  std::string settled_status(std::string_view name, boost::json::object* model = nullptr) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      const auto answer = get(name);
      EXPECT_EQ(answer.status, 200) << answer.body;
      auto object = json_object(answer.body);
      const std::string status(object.at("status").as_string());
      if (status != "validating" || std::chrono::steady_clock::now() > deadline) {
        if (model != nullptr) *model = object;
        return status;
      }
      std::this_thread::sleep_for(50ms);
    }
  }
};

TEST_F(FakeApiModelsTest, ACreatedModelValidatesThenBecomesActive) {
  start();
  api().set_model_behaviour({.validate_for = 400ms});
  const auto file_id = upload_file();
  const auto created = create(R"({"name":"my-lora","base_model":"meta-llama/Llama-3.1-8B","source":")" + file_id +
                                  R"(","description":"from the drop folder"})",
                              "?ai_project_id=p1");
  ASSERT_EQ(created.status, 200) << created.body;
  const auto model = json_object(created.body);
  EXPECT_EQ(model.at("name"), "my-lora");
  EXPECT_EQ(model.at("base_model"), "meta-llama/Llama-3.1-8B");
  EXPECT_EQ(model.at("source"), file_id.c_str());
  EXPECT_EQ(model.at("description"), "from the drop folder");
  EXPECT_EQ(model.at("ai_project_id"), "p1");
  EXPECT_EQ(model.at("status"), "validating");
  EXPECT_TRUE(model.at("status_reason").is_null());
  EXPECT_EQ(json_object(get("my-lora").body).at("status"), "validating");

  boost::json::object settled;
  EXPECT_EQ(settled_status("my-lora", &settled), "active");
  EXPECT_TRUE(settled.at("status_reason").is_null());
  const auto list = json_object(curl_answer({"-H", "Authorization: Bearer test-token", url("/v0/models")}).body);
  ASSERT_EQ(list.at("data").as_array().size(), 1u);
  EXPECT_EQ(list.at("data").as_array()[0].as_object().at("file_id"), file_id.c_str());
  ASSERT_EQ(api().models().size(), 1u);
  EXPECT_EQ(api().models()[0].status, "active");
  EXPECT_EQ(api().models()[0].project_id, "p1");
}

TEST_F(FakeApiModelsTest, AModelThatFailsValidationSaysWhy) {
  start();
  api().set_model_behaviour({.validate_for = 100ms, .status = "error", .reason = "adapter rank 512 is not supported"});
  const auto file_id = upload_file();
  ASSERT_EQ(create(R"({"name":"bad","base_model":"b","source":")" + file_id + R"("})").status, 200);
  boost::json::object model;
  EXPECT_EQ(settled_status("bad", &model), "error");
  EXPECT_EQ(model.at("status_reason"), "adapter rank 512 is not supported");
}

TEST_F(FakeApiModelsTest, RefusalsAreTheApisAnswers) {
  start();
  const auto file_id = upload_file();
  api().add_model({.name = "taken", .base_model = "b", .source = "file-other"});
  const auto conflict = create(R"({"name":"taken","base_model":"b","source":")" + file_id + R"("})");
  EXPECT_EQ(conflict.status, 409);
  EXPECT_EQ(conflict.body, R"({"detail":"Model with name 'taken' already exists"})");
  const auto missing = create(R"({"name":"m","source":")" + file_id + R"("})");
  EXPECT_EQ(missing.status, 422);
  const auto detail = json_object(missing.body).at("detail").as_array();
  ASSERT_EQ(detail.size(), 1u);
  EXPECT_EQ(detail[0].as_object().at("loc").as_array()[1], "base_model");
  EXPECT_EQ(detail[0].as_object().at("msg"), "Field required");
  EXPECT_EQ(create("not json").status, 422);
  EXPECT_EQ(create(R"({"name":"m","base_model":"b","source":"file-nope"})").status, 400);
  EXPECT_EQ(get("nope").status, 404);
  EXPECT_EQ(get("nope").body, R"({"detail":"Model not found"})");
  EXPECT_EQ(curl_answer({url("/v0/models/taken")}).status, 403);
  EXPECT_EQ(curl_answer({"-H", "Authorization: Bearer wrong", url("/v0/models/taken")}).status, 401);
  EXPECT_EQ(curl_answer({"-X", "DELETE", "-H", "Authorization: Bearer test-token", url("/v0/models/taken")}).status,
            405);
}

TEST_F(FakeApiModelsTest, ModelFaultsApplyInOrderToModelRequestsOnly) {
  start();
  const auto file_id = upload_file();
  api().push_model_fault({.kind = FaultKind::status, .status = 503, .headers = {{"Retry-After", "2"}}});
  api().push_model_fault({.kind = FaultKind::status, .status = 422});
  // Made, then the connection reset: the client never learns that it worked.
  api().push_model_fault({.kind = FaultKind::reset_after_body, .store_first = true});
  EXPECT_EQ(upload_file("second.zip").empty(), false) << "uploads do not take model faults";
  const auto body = R"({"name":"m","base_model":"b","source":")" + file_id + R"("})";
  const auto unavailable = curl_answer({"-i", "-H", "Authorization: Bearer test-token", "-H",
                                        "Content-Type: application/json", "--data", body, url("/v0/models")});
  EXPECT_EQ(unavailable.status, 503);
  EXPECT_NE(unavailable.body.find("Retry-After: 2"), std::string::npos) << unavailable.body;
  EXPECT_EQ(create(body).status, 422);
  EXPECT_TRUE(api().models().empty());
  const auto reset = create(body);
  EXPECT_NE(reset.exit_code, 0);
  ASSERT_EQ(api().models().size(), 1u) << "store_first made the model before the reset";
  EXPECT_EQ(create(body).status, 409);
  EXPECT_EQ(get("m").status, 200);
}

TEST_F(FakeApiModelsTest, ControlApiSetsBehaviourQueuesFaultsAndListsModels) {
  start();
  const auto control = [&](const std::string& path, const std::string& body) {
    return curl_answer({"-H", "Content-Type: application/json", "--data", body, url(path)});
  };
  EXPECT_EQ(control("/_fake/model-behaviour", R"({"validate_for":0,"status":"error","reason":"no"})").status, 200);
  EXPECT_EQ(control("/_fake/model-behaviour", R"({"status":"maybe"})").status, 400);
  EXPECT_EQ(control("/_fake/model-faults", R"([{"kind":"status","status":500}])").body, R"({"queued":1})");
  const auto file_id = upload_file();
  const auto body = R"({"name":"m","base_model":"b","source":")" + file_id + R"("})";
  EXPECT_EQ(create(body).status, 500);
  EXPECT_EQ(create(body).status, 200);
  const auto models = curl_answer({url("/_fake/models")});
  EXPECT_NE(models.body.find(R"("status":"error")"), std::string::npos) << models.body;
  EXPECT_EQ(control("/_fake/reset", "").status, 200);
  EXPECT_TRUE(api().models().empty());
}

}  // namespace
}  // namespace modeldrop::test
