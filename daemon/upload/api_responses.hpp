#pragma once

// Parsers for what the API answers (tests/support/fake_api/upload-openapi.yaml). Pure functions on
// untrusted text: any input gives a value or nullopt, never a crash (fuzzed).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modeldrop::upload {

// OpenAIFile: `id` must be a non-empty string for the answer to count (docs/http.md).
struct OpenAIFile {
  std::string id;
  std::optional<std::int64_t> bytes;
  std::optional<std::string> filename;
  std::optional<std::int64_t> created_at;
  std::optional<std::string> status;
  std::optional<std::string> status_details;
};

std::optional<OpenAIFile> parse_openai_file(std::string_view body);

// One page of GET /v1/files: `{"object": "list", "data": [OpenAIFile...], "has_more": bool,
// "first_id", "last_id"}`; entries without an id are skipped. `has_more` absent means false.
struct FilePage {
  std::vector<OpenAIFile> files;
  bool has_more = false;
  std::optional<std::string> last_id;  // the cursor for `after`
};
std::optional<FilePage> parse_file_page(std::string_view body);

// A custom model (POST /v0/models, GET /v0/models/{name}): `name` must be a non-empty string.
// `source` is the file it was made from (`source`, else `file_id`); `status_reason` is bounded,
// valid UTF-8 text, as it goes into the database.
struct CustomModel {
  std::string name;
  std::optional<std::string> status;
  std::optional<std::string> status_reason;
  std::optional<std::string> source;
};
std::optional<CustomModel> parse_custom_model(std::string_view body);

// The human text of an error answer: FastAPI's `{"detail": [{"loc", "msg"}...]}` as
// "body.file: Field required; ...", `{"detail": "text"}` as the text, anything else as
// the body's first line (trimmed, bounded, valid UTF-8). Empty for an empty body.
std::string error_detail(std::string_view body);

}  // namespace modeldrop::upload
