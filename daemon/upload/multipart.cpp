#include "upload/multipart.hpp"

#include "common/text.hpp"

namespace modeldrop::upload {
namespace {

constexpr std::string_view kHexDigits = "0123456789ABCDEF";
constexpr std::string_view kLowerHexDigits = "0123456789abcdef";

void append_percent(std::string& out, unsigned char byte) {
  out += '%';
  out += kHexDigits[byte >> 4U];
  out += kHexDigits[byte & 0x0FU];
}

// Length of the valid UTF-8 sequence starting at text[i] (2..4), or 0 if there is none.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  const auto lead = static_cast<unsigned char>(text[i]);
  std::size_t length = 0;
  unsigned min_code_point = 0;
  unsigned code_point = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    code_point = lead & 0x1FU;
    min_code_point = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    code_point = lead & 0x0FU;
    min_code_point = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    code_point = lead & 0x07U;
    min_code_point = 0x10000;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (std::size_t k = 1; k < length; ++k) {
    const auto next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xC0U) != 0x80U) return 0;
    code_point = (code_point << 6U) | (next & 0x3FU);
  }
  // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8.
  if (code_point < min_code_point || (code_point >= 0xD800 && code_point <= 0xDFFF) || code_point > 0x10FFFF) {
    return 0;
  }
  return length;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

std::string quote_filename(std::string_view filename) {
  std::string out;
  out.reserve(filename.size() + 8);
  for (std::size_t i = 0; i < filename.size();) {
    const auto byte = static_cast<unsigned char>(filename[i]);
    if (byte == '\\' || byte == '"') {
      out += '\\';
      out += static_cast<char>(byte);
      ++i;
    } else if (byte < 0x20 || byte == 0x7F) {
      append_percent(out, byte);
      ++i;
    } else if (byte < 0x80) {
      out += static_cast<char>(byte);
      ++i;
    } else if (const std::size_t length = utf8_sequence_length(filename, i); length != 0) {
      out.append(filename.substr(i, length));
      i += length;
    } else {
      append_percent(out, byte);
      ++i;
    }
  }
  return out;
}

std::string_view content_type_for(std::string_view filename) {
  const std::string name = ascii_lower(filename);
  if (ends_with(name, ".zip")) return "application/zip";
  if (ends_with(name, ".tar")) return "application/x-tar";
  if (ends_with(name, ".tar.gz") || ends_with(name, ".tgz")) return "application/gzip";
  return "application/octet-stream";
}

std::string make_boundary(std::mt19937_64& rng) {
  std::string boundary = "modeldrop-";
  for (int word = 0; word < 2; ++word) {
    std::uint64_t bits = rng();
    for (int nibble = 0; nibble < 16; ++nibble) {
      boundary += kLowerHexDigits[bits & 0x0FU];
      bits >>= 4U;
    }
  }
  return boundary;
}

std::string MultipartFraming::content_type() const {
  return "multipart/form-data; boundary=" + boundary;
}

namespace {

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  std::size_t at = 0;
  for (auto hit = text.find(from); hit != std::string_view::npos; hit = text.find(from, at)) {
    out.append(text.substr(at, hit - at)).append(to);
    at = hit + from.size();
  }
  out.append(text.substr(at));
  return out;
}

}  // namespace

std::string recorded_filename(std::string_view filename) {
  std::string name = replace_all(replace_all(quote_filename(filename), "\\\\", "\\"), "\\\"", "\"");
  const std::string_view view(name);
  if ((view.size() >= 3 && view.substr(1, 2) == ":\\") || view.starts_with("\\\\")) {
    name = name.substr(name.rfind('\\') + 1);
  }
  return name;
}

MultipartFraming make_multipart_framing(std::string_view filename, std::string boundary) {
  MultipartFraming framing;
  framing.preamble = "--" + boundary +
                     "\r\n"
                     "Content-Disposition: form-data; name=\"file\"; filename=\"" +
                     quote_filename(filename) +
                     "\"\r\n"
                     "Content-Type: " +
                     std::string(content_type_for(filename)) + "\r\n\r\n";
  framing.epilogue = "\r\n--" + boundary + "--\r\n";
  framing.boundary = std::move(boundary);
  return framing;
}

}  // namespace modeldrop::upload
