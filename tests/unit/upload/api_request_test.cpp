#include "upload/api_request.hpp"

#include <gtest/gtest.h>

namespace modeldrop::upload {
namespace {

const WallTime kNow = WallClock::from_time_t(1'800'000'000);

UploadResult answered(int status, std::string body) {
  UploadResult result;
  result.http_status = status;
  result.body = std::move(body);
  result.body_complete = true;
  return result;
}

TEST(RequestTarget, QueryValuesArePercentEncodedAfterTheBasePath) {
  const ApiRequest request = ApiRequest::get("/v1/files", {{"limit", "100"}, {"ai_project_id", "p 1&x=/"}});
  EXPECT_EQ(request_target("/base", request), "/base/v1/files?limit=100&ai_project_id=p%201%26x%3D%2F");
  EXPECT_EQ(request_target("", ApiRequest::post("/v0/models", boost::json::object{})), "/v0/models");
}

TEST(ClassifyApiAnswer, A2xxWithJsonSucceedsAndCarriesTheParsedBody) {
  const ApiAnswer answer = classify_api_answer(answered(200, R"({"object":"list","data":[]})"), kNow);
  EXPECT_TRUE(answer.ok());
  EXPECT_EQ(answer.json.at("object").as_string(), "list");
  EXPECT_TRUE(answer.reason.empty());
}

TEST(ClassifyApiAnswer, A2xxThatIsNotJsonIsRetriedAsMalformed) {
  const ApiAnswer answer = classify_api_answer(answered(200, "<html>proxy</html>"), kNow);
  EXPECT_EQ(answer.verdict, Verdict::retry);
  EXPECT_NE(answer.reason.find("malformed"), std::string::npos);
  EXPECT_TRUE(answer.json.is_null());
}

TEST(ClassifyApiAnswer, StatusesFollowTheUploadTable) {
  EXPECT_EQ(classify_api_answer(answered(404, R"({"detail":"File not found"})"), kNow).verdict, Verdict::failed);
  EXPECT_EQ(classify_api_answer(answered(401, "{}"), kNow).verdict, Verdict::hold_auth);
  EXPECT_EQ(classify_api_answer(answered(503, ""), kNow).verdict, Verdict::retry);
  auto limited = answered(429, "{}");
  limited.headers = {{"retry-after", "7"}};
  const ApiAnswer answer = classify_api_answer(limited, kNow);
  EXPECT_EQ(answer.verdict, Verdict::hold_rate_limit);
  EXPECT_EQ(answer.server_delay, std::chrono::seconds(7));
  EXPECT_EQ(classify_api_answer(answered(404, R"({"detail":"File not found"})"), kNow).reason,
            "HTTP 404: File not found");
}

TEST(ClassifyApiAnswer, TransportErrorsAreRetriedAndCancelIsCancel) {
  UploadResult reset;
  reset.error = AttemptError::connection_closed;
  reset.error_message = "the connection closed";
  EXPECT_EQ(classify_api_answer(reset, kNow).verdict, Verdict::retry);
  UploadResult cancelled;
  cancelled.error = AttemptError::cancelled;
  EXPECT_EQ(classify_api_answer(cancelled, kNow).verdict, Verdict::cancelled);
}

}  // namespace
}  // namespace modeldrop::upload
