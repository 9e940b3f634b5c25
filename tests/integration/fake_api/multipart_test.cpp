// The fake's multipart parsing: filename decoding as python-multipart does it (expected values
// produced by python-multipart's parse_options_header), and chunking that cannot change results.

#include "support/fake_api/multipart.hpp"

#include <gtest/gtest.h>

#include <random>

namespace modeldrop::test::multipart {
namespace {

std::string filename_of(std::string_view disposition) {
  const auto parsed = parse_options_header(disposition);
  const auto it = parsed.params.find("filename");
  return it == parsed.params.end() ? "<none>" : it->second;
}

TEST(ParseOptionsHeader, DecodesOnlyBackslashQuoteAndBackslashBackslash) {
  EXPECT_EQ(filename_of(R"(form-data; name="file"; filename="a.zip")"), "a.zip");
  EXPECT_EQ(filename_of(R"(form-data; name="file"; filename="with \"quote\".zip")"), R"(with "quote".zip)");
  EXPECT_EQ(filename_of(R"(form-data; name="file"; filename="back\\slash.zip")"), R"(back\slash.zip)");
  EXPECT_EQ(filename_of(R"(form-data; name="file"; filename="ends\\")"), "ends\\");
  EXPECT_EQ(filename_of(R"(form-data; name="file"; filename="odd\q")"), R"(odd\q)");
  EXPECT_EQ(filename_of(R"(form-data; name="file"; filename="t\\\"q")"), R"(t\"q)");
}

TEST(ParseOptionsHeader, LeavesPercentSequencesLiteral) {
  EXPECT_EQ(filename_of(R"(form-data; name="file"; filename="a%22b%0Ac%0D.zip")"), "a%22b%0Ac%0D.zip");
}

TEST(ParseOptionsHeader, KeepsUtf8BytesAndSemicolonsInQuotes) {
  EXPECT_EQ(filename_of("form-data; name=\"file\"; filename=\"\xD0\xBC\xD0\xBE\xD0\xB4 \xC3\xBC.zip\""),
            "\xD0\xBC\xD0\xBE\xD0\xB4 \xC3\xBC.zip");
  EXPECT_EQ(filename_of(R"(form-data; name="file"; filename="semi;colon.zip")"), "semi;colon.zip");
}

TEST(ParseOptionsHeader, FollowsPythonMultipartQuirks) {
  // Windows paths are cut to the last component (IE6 workaround).
  EXPECT_EQ(filename_of(R"(form-data; name="file"; filename="C:\\dir\\x.zip")"), "x.zip");
  // RFC 2231 `filename*` is ignored; the plain parameter is authoritative.
  EXPECT_EQ(filename_of(R"(form-data; name="file"; filename*=utf-8''x.zip; filename="y.zip")"), "y.zip");
  EXPECT_EQ(filename_of("form-data; name=file; filename=plain.zip"), "plain.zip");
  EXPECT_EQ(filename_of(R"(form-data; NAME="file"; FileName = "spaced.zip")"), "spaced.zip");
  EXPECT_EQ(filename_of(R"(form-data; name="file"; filename="")"), "");
  // Naive quote counting: a filename ending in `\\` swallows the parameters after it, so a
  // client must send name= before filename= (as curl and browsers do).
  const auto swallowed = parse_options_header(R"(form-data; filename="ends\\"; name="file")");
  EXPECT_EQ(swallowed.params.at("filename"), R"(ends"; name="file)");
  EXPECT_EQ(swallowed.params.count("name"), 0u);
}

TEST(ParseOptionsHeader, ContentTypeValueAndQuotedBoundary) {
  const auto parsed = parse_options_header(R"(multipart/form-data; boundary="quoted-boundary")");
  EXPECT_EQ(parsed.value, "multipart/form-data");
  EXPECT_EQ(parsed.params.at("boundary"), "quoted-boundary");
  EXPECT_EQ(parse_options_header("Form-Data").value, "form-data");
}

TEST(DecodeHeaderText, Utf8KeptLatin1Converted) {
  EXPECT_EQ(decode_header_text("\xC3\xBC"), "\xC3\xBC");
  EXPECT_EQ(decode_header_text("caf\xE9"), "caf\xC3\xA9");
}

struct RecordedPart {
  PartHeaders headers;
  std::string data;
  bool ended = false;
};

class RecordingSink final : public PartSink {
 public:
  void on_part_begin(const PartHeaders& headers) override { parts.push_back({headers, {}, false}); }
  void on_part_data(std::string_view bytes) override { parts.back().data.append(bytes); }
  void on_part_end() override { parts.back().ended = true; }
  std::vector<RecordedPart> parts;
};

std::string two_part_body(const std::string& boundary, const std::string& content) {
  return "preamble to ignore\r\n--" + boundary +
         "\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--" + boundary +
         "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\nContent-Type: "
         "application/zip\r\n\r\n" +
         content + "\r\n--" + boundary + "--\r\nepilogue --" + boundary + "\r\n";
}

std::vector<RecordedPart> parse_in_chunks(const std::string& boundary, const std::string& body, std::size_t chunk,
                                          bool* complete) {
  RecordingSink sink;
  StreamingParser parser(boundary, sink);
  for (std::size_t at = 0; at < body.size(); at += chunk) {
    EXPECT_TRUE(parser.feed(std::string_view(body).substr(at, chunk))) << parser.error();
  }
  *complete = parser.complete();
  return sink.parts;
}

TEST(StreamingParser, SameEventsWhateverTheChunkSize) {
  const std::string boundary = "----b0undary";
  std::string content;
  std::mt19937 random(7);
  for (int i = 0; i < 5000; ++i) content.push_back(static_cast<char>(random() & 0xFF));
  // Near-misses of the delimiter inside the content.
  content += "\r\n--" + boundary.substr(0, 6) + "\r\n-\r\n--\r";
  const std::string body = two_part_body(boundary, content);
  for (const std::size_t chunk : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7}, std::size_t{16},
                                  std::size_t{17}, std::size_t{64}, std::size_t{4096}, body.size()}) {
    bool complete = false;
    const auto parts = parse_in_chunks(boundary, body, chunk, &complete);
    ASSERT_EQ(parts.size(), 2u) << "chunk " << chunk;
    EXPECT_TRUE(complete);
    EXPECT_EQ(parts[0].data, "hello");
    EXPECT_EQ(parts[0].headers.find("content-disposition"), "form-data; name=\"note\"");
    EXPECT_TRUE(parts[1].ended);
    EXPECT_EQ(parts[1].headers.find("content-type"), "application/zip");
    EXPECT_EQ(parts[1].data.size(), content.size()) << "chunk " << chunk;
    EXPECT_TRUE(parts[1].data == content) << "chunk " << chunk;
  }
}

TEST(StreamingParser, EmptyPartAndPartWithoutHeaders) {
  const std::string body = "--b\r\n\r\n\r\n--b\r\nX-A: 1\r\n\r\n\r\n--b--";
  bool complete = false;
  const auto parts = parse_in_chunks("b", body, 1, &complete);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_TRUE(parts[0].headers.fields.empty());
  EXPECT_EQ(parts[0].data, "");
  EXPECT_EQ(parts[1].headers.find("x-a"), "1");
  EXPECT_EQ(parts[1].data, "");
  EXPECT_TRUE(complete);
}

TEST(StreamingParser, TruncatedBodyLeavesThePartUnended) {
  RecordingSink sink;
  StreamingParser parser("b", sink);
  EXPECT_TRUE(parser.feed("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nabcdef"));
  EXPECT_FALSE(parser.complete());
  ASSERT_EQ(sink.parts.size(), 1u);
  EXPECT_FALSE(sink.parts[0].ended);
}

TEST(StreamingParser, RejectsMalformedBodies) {
  RecordingSink sink;
  StreamingParser garbage_after_delimiter("b", sink);
  EXPECT_FALSE(garbage_after_delimiter.feed("--bXY\r\n\r\n"));
  EXPECT_FALSE(garbage_after_delimiter.error().empty());

  StreamingParser header_without_colon("b", sink);
  EXPECT_FALSE(header_without_colon.feed("--b\r\nno colon here\r\n\r\ndata"));

  StreamingParser huge_headers("b", sink);
  bool ok = huge_headers.feed("--b\r\nX-Long: ");
  for (int i = 0; i < 40 && ok; ++i) ok = huge_headers.feed(std::string(1024, 'a'));
  EXPECT_FALSE(ok);

  StreamingParser empty_boundary("", sink);
  EXPECT_TRUE(empty_boundary.failed());
}

}  // namespace
}  // namespace modeldrop::test::multipart
