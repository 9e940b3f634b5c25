// docs/http.md's multipart framing: the quoted filename, the part's Content-Type, the exact
// Content-Length.
#include "upload/multipart.hpp"

#include <gtest/gtest.h>

namespace modeldrop::upload {
namespace {

TEST(QuoteFilename, PlainNamesAreUnchanged) {
  EXPECT_EQ(quote_filename("model.tar.gz"), "model.tar.gz");
  EXPECT_EQ(quote_filename("with space (1).zip"), "with space (1).zip");
  EXPECT_EQ(quote_filename("50%.zip"), "50%.zip") << "a percent sign is not an escape";
}

TEST(QuoteFilename, BackslashAndQuoteAreBackslashEscaped) {
  EXPECT_EQ(quote_filename(R"(a"b.zip)"), R"(a\"b.zip)");
  EXPECT_EQ(quote_filename(R"(a\b.zip)"), R"(a\\b.zip)");
  EXPECT_EQ(quote_filename(R"(\")"), R"(\\\")");
}

TEST(QuoteFilename, ControlCharactersArePercentEncoded) {
  EXPECT_EQ(quote_filename("a\nb.zip"), "a%0Ab.zip");
  EXPECT_EQ(quote_filename("a\r\nb"), "a%0D%0Ab");
  EXPECT_EQ(quote_filename(std::string("a\0b", 3)), "a%00b");
  EXPECT_EQ(quote_filename("tab\there\x7f"), "tab%09here%7F");
}

TEST(QuoteFilename, Utf8IsKeptAndInvalidBytesAreEncoded) {
  EXPECT_EQ(quote_filename("модель-😀.zip"), "модель-😀.zip");
  EXPECT_EQ(quote_filename("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(quote_filename("bad\xFF.zip"), "bad%FF.zip");
  EXPECT_EQ(quote_filename("cut\xC3"), "cut%C3") << "a truncated sequence is not UTF-8";
  EXPECT_EQ(quote_filename("\xC0\xAF"), "%C0%AF") << "an overlong form is not UTF-8";
  EXPECT_EQ(quote_filename("\xED\xA0\x80"), "%ED%A0%80") << "a UTF-16 surrogate is not UTF-8";
}

TEST(ContentType, ByArchiveExtensionCaseInsensitive) {
  EXPECT_EQ(content_type_for("a.zip"), "application/zip");
  EXPECT_EQ(content_type_for("A.ZIP"), "application/zip");
  EXPECT_EQ(content_type_for("a.tar"), "application/x-tar");
  EXPECT_EQ(content_type_for("a.tar.gz"), "application/gzip");
  EXPECT_EQ(content_type_for("a.TGZ"), "application/gzip");
  EXPECT_EQ(content_type_for("a.gz"), "application/octet-stream");
  EXPECT_EQ(content_type_for("zip"), "application/octet-stream");
  EXPECT_EQ(content_type_for("a.safetensors"), "application/octet-stream");
}

TEST(Boundary, RandomHexFromTheGivenGenerator) {
  std::mt19937_64 rng(42);
  const std::string a = make_boundary(rng);
  const std::string b = make_boundary(rng);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("modeldrop-", 0), 0U);
  EXPECT_EQ(a.size(), 10U + 32U);
  EXPECT_EQ(a.find_first_not_of("modeldrp-0123456789abcdef"), std::string::npos);
  std::mt19937_64 same(42);
  EXPECT_EQ(make_boundary(same), a) << "seeded: reproducible";
}

TEST(MultipartFraming, ExactBytesAndContentLength) {
  const auto framing = make_multipart_framing("my \"model\".tgz", "BOUND");
  EXPECT_EQ(framing.preamble,
            "--BOUND\r\n"
            "Content-Disposition: form-data; name=\"file\"; filename=\"my \\\"model\\\".tgz\"\r\n"
            "Content-Type: application/gzip\r\n"
            "\r\n");
  EXPECT_EQ(framing.epilogue, "\r\n--BOUND--\r\n");
  EXPECT_EQ(framing.content_type(), "multipart/form-data; boundary=BOUND");
  EXPECT_EQ(framing.content_length(0), framing.preamble.size() + framing.epilogue.size());
  const std::uint64_t four_gib = 4ULL << 30U;
  EXPECT_EQ(framing.content_length(four_gib), framing.preamble.size() + four_gib + framing.epilogue.size());
}

}  // namespace
}  // namespace modeldrop::upload

namespace modeldrop::upload {
namespace {

TEST(RecordedFilename, IsWhatTheApiDecodesFromTheQuotedName) {
  EXPECT_EQ(recorded_filename("lora.zip"), "lora.zip");
  EXPECT_EQ(recorded_filename(R"(a"b\c.zip)"), R"(a"b\c.zip)");
  EXPECT_EQ(recorded_filename("line\nbreak.zip"), "line%0Abreak.zip");
  EXPECT_EQ(recorded_filename("caf\xc3\xa9.zip"), "caf\xc3\xa9.zip");
  EXPECT_EQ(recorded_filename(R"(C:\models\lora.zip)"), "lora.zip");
  EXPECT_EQ(recorded_filename(R"(\\server\share\m.tar)"), "m.tar");
}

}  // namespace
}  // namespace modeldrop::upload
