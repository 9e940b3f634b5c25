#pragma once

// multipart/form-data as the API's stack (FastAPI -> Starlette -> python-multipart) reads it:
// a streaming parser that never holds more than a part's headers and a delimiter's length of
// data, and the header-parameter decoding that decides which filename the server records.

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modeldrop::test::multipart {

// A header value with `;`-separated parameters, e.g. `form-data; name="file"; filename="a.zip"`.
struct OptionsHeader {
  std::string value;                          // the part before the first `;`, trimmed
  std::map<std::string, std::string> params;  // lowercase key -> decoded bytes (last one wins)
};

// python-multipart's `parse_options_header` (verified against its source, the version that
// vendors `email.message._parseparam`; the older regex-based one decodes the same way):
// - segments split on `;` unless the `;` is inside quotes, counted naively as the number of
//   `"` minus the number of `\"` before it;
// - a value that starts and ends with `"` is unquoted by `replace('\\\\', '\\')` then
//   `replace('\\"', '"')` — so only `\\` and `\"` are escapes; `\x` stays `\x`, and
//   percent sequences (`%22`, `%0A`, ...) are NOT decoded: they reach the app literally;
// - keys containing `*` (RFC 2231 `filename*=`) are ignored;
// - a filename that looks like a Windows path (`C:\...` or `\\...`) is cut to its last
//   `\`-separated component (an old IE6 workaround).
// Bytes are kept as bytes (Python goes through latin-1, which is the identity on bytes).
OptionsHeader parse_options_header(std::string_view header);

// Starlette's `_user_safe_decode`: the bytes as UTF-8 if they are valid UTF-8, otherwise
// read as latin-1 (each byte one code point), re-encoded here as UTF-8.
std::string decode_header_text(std::string_view bytes);

// The headers of one part, names lowercased (Starlette lowercases them), in order.
struct PartHeaders {
  std::vector<std::pair<std::string, std::string>> fields;
  [[nodiscard]] std::optional<std::string_view> find(std::string_view lowercase_name) const;
};

// What the streaming parser reports, in order: begin, data..., end for each complete part.
class PartSink {
 public:
  virtual ~PartSink() = default;
  virtual void on_part_begin(const PartHeaders& headers) = 0;
  virtual void on_part_data(std::string_view bytes) = 0;
  virtual void on_part_end() = 0;

 protected:
  PartSink() = default;
  PartSink(const PartSink&) = default;
  PartSink& operator=(const PartSink&) = default;
};

// A push parser: feed it the body in chunks of any size (1 byte or 1 MiB give the same
// events). Bytes before the first delimiter (the preamble) and after the close delimiter
// (the epilogue) are ignored, as RFC 2046 says. A part cut off by the end of the body never
// gets `on_part_end` (Starlette then drops it).
class StreamingParser {
 public:
  StreamingParser(std::string_view boundary, PartSink& sink);

  // False once the body is malformed; `error()` says why. Further input is ignored.
  bool feed(std::string_view chunk);
  [[nodiscard]] bool failed() const { return state_ == State::failed; }
  [[nodiscard]] bool complete() const { return state_ == State::epilogue; }  // close delimiter seen
  [[nodiscard]] const std::string& error() const { return error_; }

  static constexpr std::size_t kMaxBoundary = 256;       // python-multipart's MAX_BOUNDARY_LENGTH
  static constexpr std::size_t kMaxHeaderBlock = 16384;  // all headers of one part

 private:
  enum class State { preamble, after_delimiter, headers, data, epilogue, failed };

  // Finds the delimiter in the data that `pending_` and `chunk` continue; reports the data
  // before it (when `deliver`) and returns the offset in `chunk` just past it, or npos.
  std::size_t scan_for_delimiter(std::string_view chunk, bool deliver);
  std::size_t take_headers(std::string_view chunk);
  bool fail(std::string message);

  std::string delimiter_;  // CRLF "--" boundary
  PartSink& sink_;
  State state_ = State::preamble;
  std::string pending_;       // data that may begin a delimiter (shorter than the delimiter)
  std::string after_;         // the two bytes after a delimiter: "--" or CRLF
  std::string header_block_;  // CRLF + the part's header lines so far
  std::string error_;
};

}  // namespace modeldrop::test::multipart
