#include "upload/api_responses.hpp"

#include <gtest/gtest.h>

namespace modeldrop::upload {
namespace {

TEST(ParseOpenAIFile, RequiresANonEmptyStringId) {
  auto file = parse_openai_file(R"({"id":"file-1","bytes":10,"created_at":5,"filename":"m.zip","status":null})");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->id, "file-1");
  EXPECT_EQ(file->bytes, 10);
  EXPECT_EQ(file->filename, "m.zip");
  EXPECT_FALSE(file->status);
  EXPECT_FALSE(parse_openai_file(R"({"id":null})"));
  EXPECT_FALSE(parse_openai_file(R"({"bytes":1})"));
  EXPECT_FALSE(parse_openai_file("{\"id\":\"file-1\""));
  EXPECT_FALSE(parse_openai_file(""));
}

TEST(ParseOpenAIFile, WrongTypesOfOptionalFieldsAreDropped) {
  auto file = parse_openai_file(R"({"id":"f","bytes":"ten","status":5,"status_details":"ok"})");
  ASSERT_TRUE(file);
  EXPECT_FALSE(file->bytes);
  EXPECT_FALSE(file->status);
  EXPECT_EQ(file->status_details, "ok");
}

TEST(ParseFilePage, KeepsEntriesWithIdsAndTheCursor) {
  auto page = parse_file_page(
      R"({"object":"list","data":[{"id":"a","bytes":1},{"nope":1},{"id":"b"}],"has_more":true,"first_id":"a","last_id":"b"})");
  ASSERT_TRUE(page);
  ASSERT_EQ(page->files.size(), 2u);
  EXPECT_EQ(page->files[1].id, "b");
  EXPECT_TRUE(page->has_more);
  EXPECT_EQ(page->last_id, "b");
  auto plain = parse_file_page(R"({"object":"list","data":[]})");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->has_more);
  EXPECT_FALSE(plain->last_id);
  EXPECT_FALSE(parse_file_page(R"({"data":{}})"));
  EXPECT_FALSE(parse_file_page("[]"));
}

TEST(ParseCustomModel, NeedsANameAndTakesSourceOrFileId) {
  auto model = parse_custom_model(
      R"({"name":"my-lora","status":"error","status_reason":"rank too high","source":"file-1","file_id":"file-2"})");
  ASSERT_TRUE(model);
  EXPECT_EQ(model->name, "my-lora");
  EXPECT_EQ(model->status, "error");
  EXPECT_EQ(model->status_reason, "rank too high");
  EXPECT_EQ(model->source, "file-1");
  auto listed = parse_custom_model(R"({"name":"m","file_id":"file-2","status":null})");
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->source, "file-2");
  EXPECT_FALSE(listed->status);
  EXPECT_FALSE(parse_custom_model(R"({"name":""})"));
  EXPECT_FALSE(parse_custom_model(R"({"status":"active"})"));
  EXPECT_FALSE(parse_custom_model("[1]"));
  const std::string body = R"({"name":"m","status_reason":")" + std::string(2000, 'x') + R"("})";
  const auto long_reason = parse_custom_model(body);
  ASSERT_TRUE(long_reason);
  EXPECT_LE(long_reason->status_reason->size(), 503u) << "bounded before it goes into the database";
}

TEST(ErrorDetail, FastApiShapes) {
  EXPECT_EQ(error_detail(R"({"detail":[{"type":"missing","loc":["body","file"],"msg":"Field required"},)"
                         R"({"loc":["query","ai_project_id",0],"msg":"bad"}]})"),
            "body.file: Field required; query.ai_project_id.0: bad");
  EXPECT_EQ(error_detail(R"({"detail":"Invalid API key"})"), "Invalid API key");
}

TEST(ErrorDetail, OtherBodiesGiveTheirFirstLineBounded) {
  EXPECT_EQ(error_detail("  <html>\n<body>413</body>"), "<html>");
  EXPECT_EQ(error_detail(""), "");
  EXPECT_EQ(error_detail("bad\xFFutf8"), "bad\xEF\xBF\xBDutf8");
  const auto long_detail = error_detail(std::string(5000, 'x'));
  EXPECT_LT(long_detail.size(), 520u);
}

// Found by api_responses_fuzz: the cut at the bound could split a character, which then showed
// as U+FFFD before the "…" and pushed the text past its bound.
TEST(ErrorDetail, LongTextIsCutAtACharacterBoundary) {
  std::string accented = "x";
  for (int i = 0; i < 300; ++i) accented += "\xC3\xA9";  // é: byte 500 is inside one
  EXPECT_EQ(error_detail(accented), accented.substr(0, 499) + "\xE2\x80\xA6");
  const std::string replaced = error_detail(std::string(400, '\x86'));  // each becomes U+FFFD
  EXPECT_EQ(replaced.size(), 498u + 3u) << "166 whole U+FFFD, then the ellipsis";
  EXPECT_EQ(replaced.substr(495), "\xEF\xBF\xBD\xE2\x80\xA6");
}

}  // namespace
}  // namespace modeldrop::upload
