// The fake API's multipart parser on any body and boundary (a client may send anything): no
// crash, and the same events however the body is cut into chunks, since TCP decides that.
// The header-parameter decoding on any header text, and decode_header_text's output always
// valid UTF-8 (it goes into JSON answers).
#include "common/text.hpp"
#include "fuzz_check.hpp"
#include "support/fake_api/multipart.hpp"

#include <fuzzer/FuzzedDataProvider.h>

using modeldrop::fuzz::require;
namespace multipart = modeldrop::test::multipart;

namespace {

struct Part {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string data;
  bool ended = false;
};

class Recorder final : public multipart::PartSink {
 public:
  std::vector<Part> parts;
  void on_part_begin(const multipart::PartHeaders& headers) override {
    require(parts.empty() || parts.back().ended, "a part begins only after the previous one ended");
    parts.push_back(Part{headers.fields, {}, false});
  }
  void on_part_data(std::string_view bytes) override {
    require(!parts.empty() && !parts.back().ended, "data belongs to an open part");
    require(!bytes.empty(), "no empty data events");
    parts.back().data.append(bytes);
  }
  void on_part_end() override {
    require(!parts.empty() && !parts.back().ended, "only an open part ends");
    parts.back().ended = true;
  }
};

struct Outcome {
  std::vector<Part> parts;
  bool failed = false;
  bool complete = false;
  std::string error;
};

template <class NextChunk>
Outcome parse(std::string_view boundary, std::string_view body, NextChunk next_chunk) {
  Recorder recorder;
  multipart::StreamingParser parser(boundary, recorder);
  for (std::size_t at = 0; at < body.size();) {
    const std::size_t n = std::min(next_chunk(), body.size() - at);
    const bool ok = parser.feed(body.substr(at, n));
    require(ok == !parser.failed(), "feed's answer is the parser's state");
    at += n;
  }
  return {std::move(recorder.parts), parser.failed(), parser.complete(), parser.error()};
}

void check_header_decoding(std::string_view header) {
  const auto options = multipart::parse_options_header(header);
  for (const auto& [key, value] : options.params) {
    require(key.find('*') == std::string::npos, "RFC 2231 keys are ignored");
    const std::string text = multipart::decode_header_text(value);
    require(modeldrop::sanitize_utf8(text) == text, "decoded header text is valid UTF-8");
  }
  const std::string text = multipart::decode_header_text(header);
  require(modeldrop::sanitize_utf8(text) == text, "decoded header text is valid UTF-8");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  const std::string boundary = input.ConsumeRandomLengthString(300);
  const auto chunk_seed = input.ConsumeIntegral<std::uint32_t>();
  const std::string body = input.ConsumeRemainingBytesAsString();

  const Outcome whole = parse(boundary, body, [&] { return body.size() + 1; });
  std::uint32_t state = chunk_seed | 1U;
  const Outcome chunked = parse(boundary, body, [&] {
    state ^= state << 13U;  // xorshift32: chunk sizes 1..64 from the input's seed
    state ^= state >> 17U;
    state ^= state << 5U;
    return std::size_t{1} + (state & 63U);
  });

  require(whole.failed == chunked.failed && whole.complete == chunked.complete, "the same end state");
  require(whole.error == chunked.error, "the same error");
  require(whole.parts.size() == chunked.parts.size(), "the same number of parts");
  for (std::size_t i = 0; i < whole.parts.size(); ++i) {
    const Part& a = whole.parts[i];
    const Part& b = chunked.parts[i];
    require(a.headers == b.headers && a.ended == b.ended, "the same part headers");
    if (a.ended) {
      require(a.data == b.data, "the same data for a whole part");
    } else {
      // A part cut off holds back what may begin a delimiter; how much depends on the cuts.
      const auto shorter = std::min(a.data.size(), b.data.size());
      require(a.data.compare(0, shorter, b.data, 0, shorter) == 0, "the same data so far");
    }
    for (const auto& [name, value] : a.headers) check_header_decoding(value);
  }
  check_header_decoding(boundary);
  return 0;
}
