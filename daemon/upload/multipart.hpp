#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace modeldrop::upload {

// docs/http.md: the multipart filename as a quoted-string the API's Python parsers decode:
// `\` and `"` backslash-escaped, control characters (which cannot appear in a header) as
// %XX, valid UTF-8 kept as is, bytes that are not valid UTF-8 as %XX. Without the quotes.
std::string quote_filename(std::string_view filename);

// The filename as the API records it from quote_filename's text: the parser undoes `\\` and
// then `\"`, keeps %XX as written, and cuts a Windows-looking path (`C:\…`, `\\…`) to its last
// component. In-doubt reconciliation looks for this name in the API's file listing.
std::string recorded_filename(std::string_view filename);

// The part's Content-Type by the archive extension, case-insensitive.
std::string_view content_type_for(std::string_view filename);

// A boundary that cannot plausibly occur in an archive: 128 random bits in hex.
std::string make_boundary(std::mt19937_64& rng);

// The bytes around the file content in a one-part multipart/form-data body. The body is
// preamble + file + epilogue, so its Content-Length is known before a byte is read.
struct MultipartFraming {
  std::string boundary;
  std::string preamble;  // boundary line and the part's headers
  std::string epilogue;  // the closing boundary

  [[nodiscard]] std::string content_type() const;  // "multipart/form-data; boundary=..."
  [[nodiscard]] std::uint64_t content_length(std::uint64_t file_size) const {
    return preamble.size() + file_size + epilogue.size();
  }
};

MultipartFraming make_multipart_framing(std::string_view filename, std::string boundary);

}  // namespace modeldrop::upload
