// What the API answers is untrusted text: the OpenAIFile, list, model and error parsers give a value
// or nothing for any body, and the error text that goes into `last_error` is bounded, valid
// UTF-8 (docs/cli.md: it ends up in JSON) and empty only for a blank first line.
#include "common/text.hpp"
#include "fuzz_check.hpp"
#include "upload/api_responses.hpp"

using modeldrop::fuzz::require;

namespace {

// kMaxDetailChars in api_responses.cpp plus the "…" (3 bytes) that marks a cut.
constexpr std::size_t kMaxDetailBytes = 500 + 3;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body = modeldrop::fuzz::as_text(data, size);
  namespace upload = modeldrop::upload;

  if (const auto file = upload::parse_openai_file(body)) {
    require(!file->id.empty(), "an OpenAIFile has a non-empty id");
  }
  if (const auto page = upload::parse_file_page(body)) {
    for (const auto& file : page->files) require(!file.id.empty(), "every listed file has a non-empty id");
    if (page->last_id) require(!page->last_id->empty(), "a cursor is never empty");
  }
  if (const auto model = upload::parse_custom_model(body)) {
    require(!model->name.empty(), "a custom model has a non-empty name");
    if (model->status_reason) {
      require(model->status_reason->size() <= kMaxDetailBytes, "a model's status_reason is bounded");
      require(modeldrop::sanitize_utf8(*model->status_reason) == *model->status_reason,
              "a model's status_reason is valid UTF-8");
    }
  }
  const std::string detail = upload::error_detail(body);
  require(detail.size() <= kMaxDetailBytes, "the error detail is bounded");
  require(modeldrop::sanitize_utf8(detail) == detail, "the error detail is valid UTF-8");
  if (modeldrop::trim(body).empty()) require(detail.empty(), "a blank body has no detail");
  return 0;
}
