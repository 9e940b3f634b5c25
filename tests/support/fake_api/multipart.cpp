#include "support/fake_api/multipart.hpp"

#include "common/text.hpp"

#include <algorithm>
#include <cstring>

namespace modeldrop::test::multipart {
namespace {

// Python's str.isspace() over latin-1 code points (the header was decoded as latin-1).
bool is_python_space(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 0x09 && u <= 0x0D) || (u >= 0x1C && u <= 0x20) || u == 0x85 || u == 0xA0;
}

std::string_view python_strip(std::string_view text) {
  while (!text.empty() && is_python_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_python_space(text.back())) text.remove_suffix(1);
  return text;
}

// Python's str.lower() over latin-1 code points.
std::string python_lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 0xC0 && u <= 0xDE && u != 0xD7)) c = static_cast<char>(u + 0x20);
  }
  return out;
}

std::size_t count_of(std::string_view text, std::string_view needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  for (auto hit = text.find(from); hit != std::string::npos; hit = text.find(from, at)) {
    out.append(text, at, hit - at).append(to);
    at = hit + from.size();
  }
  out.append(text, at, std::string::npos);
  text = std::move(out);
}

// email.message._parseparam: `;`-separated segments, a `;` inside (naively counted) quotes kept.
std::vector<std::string> split_parameters(std::string_view header) {
  const std::string s = ";" + std::string(header);
  std::vector<std::string> segments;
  std::size_t pos = 0;
  while (pos < s.size() && s[pos] == ';') {
    ++pos;
    const std::string_view rest(s.data() + pos, s.size() - pos);
    auto end = rest.find(';');
    const auto inside_quotes = [&](std::size_t at) {
      const auto before = rest.substr(0, at);
      return (count_of(before, "\"") - count_of(before, "\\\"")) % 2 != 0;
    };
    while (end != std::string_view::npos && end > 0 && inside_quotes(end)) end = rest.find(';', end + 1);
    if (end == std::string_view::npos) end = rest.size();
    const std::string_view segment = rest.substr(0, end);
    const auto eq = segment.find('=');
    if (eq == std::string_view::npos) {
      segments.emplace_back(python_strip(segment));
    } else {
      const std::string joined =
          python_lower(python_strip(segment.substr(0, eq))) + "=" + std::string(python_strip(segment.substr(eq + 1)));
      segments.emplace_back(python_strip(joined));
    }
    pos += end;
  }
  return segments;
}

}  // namespace

OptionsHeader parse_options_header(std::string_view header) {
  OptionsHeader parsed;
  if (header.empty()) return parsed;
  if (header.find(';') == std::string_view::npos) {
    parsed.value = python_strip(python_lower(header));
    return parsed;
  }
  auto segments = split_parameters(header);
  parsed.value = segments.front();
  for (std::size_t i = 1; i < segments.size(); ++i) {
    const std::string& segment = segments[i];
    const auto eq = segment.find('=');
    const std::string key = segment.substr(0, eq);
    std::string value = eq == std::string::npos ? std::string() : segment.substr(eq + 1);
    if (key.find('*') != std::string::npos) continue;  // RFC 7578 forbids RFC 2231 in form-data
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
      replace_all(value, "\\\\", "\\");
      replace_all(value, "\\\"", "\"");
    }
    const std::string_view view(value);
    if (key == "filename" && ((view.size() >= 3 && view.substr(1, 2) == ":\\") || view.starts_with("\\\\"))) {
      value = value.substr(value.rfind('\\') + 1);
    }
    parsed.params[key] = std::move(value);
  }
  return parsed;
}

std::string decode_header_text(std::string_view bytes) {
  if (sanitize_utf8(bytes) == bytes) return std::string(bytes);
  std::string out;
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80) {
      out.push_back(c);
    } else {
      out.push_back(static_cast<char>(0xC0 | (u >> 6)));
      out.push_back(static_cast<char>(0x80 | (u & 0x3F)));
    }
  }
  return out;
}

std::optional<std::string_view> PartHeaders::find(std::string_view lowercase_name) const {
  // The last one wins, as in a Python dict built from the header list.
  for (auto it = fields.rbegin(); it != fields.rend(); ++it) {
    if (it->first == lowercase_name) return std::string_view(it->second);
  }
  return std::nullopt;
}

StreamingParser::StreamingParser(std::string_view boundary, PartSink& sink)
    : delimiter_("\r\n--" + std::string(boundary)), sink_(sink) {
  // The body may start with the first delimiter itself ("--boundary"): pretend a CRLF came before.
  pending_ = "\r\n";
  if (boundary.empty() || boundary.size() > kMaxBoundary) fail("invalid multipart boundary length");
}

bool StreamingParser::fail(std::string message) {
  state_ = State::failed;
  error_ = std::move(message);
  return false;
}

std::size_t StreamingParser::scan_for_delimiter(std::string_view chunk, bool deliver) {
  const std::size_t d = delimiter_.size();
  const auto emit = [&](std::string_view bytes) {
    if (deliver && !bytes.empty()) sink_.on_part_data(bytes);
  };
  if (!pending_.empty()) {
    // A delimiter starting in pending_ ends within the next d-1 bytes of the chunk.
    const std::size_t take = std::min(chunk.size(), d - 1);
    const std::size_t pending_size = pending_.size();
    std::string joined = pending_;
    joined.append(chunk.substr(0, take));
    const auto hit = joined.find(delimiter_);
    if (hit != std::string::npos) {
      emit(std::string_view(joined).substr(0, hit));
      pending_.clear();
      return hit + d - pending_size;
    }
    if (take == chunk.size()) {
      const std::size_t keep = std::min(joined.size(), d - 1);
      emit(std::string_view(joined).substr(0, joined.size() - keep));
      pending_ = joined.substr(joined.size() - keep);
      return std::string_view::npos;
    }
    emit(pending_);
    pending_.clear();
  }
  const void* found = ::memmem(chunk.data(), chunk.size(), delimiter_.data(), d);
  if (found != nullptr) {
    const auto hit = static_cast<std::size_t>(static_cast<const char*>(found) - chunk.data());
    emit(chunk.substr(0, hit));
    return hit + d;
  }
  const std::size_t keep = std::min(chunk.size(), d - 1);
  emit(chunk.substr(0, chunk.size() - keep));
  pending_.assign(chunk.substr(chunk.size() - keep));
  return std::string_view::npos;
}

std::size_t StreamingParser::take_headers(std::string_view chunk) {
  const std::size_t old_size = header_block_.size();
  const std::size_t room = kMaxHeaderBlock + 4 - std::min(old_size, kMaxHeaderBlock + 4);
  header_block_.append(chunk.substr(0, std::min(chunk.size(), room)));
  // header_block_ starts with the CRLF that ended the delimiter line, so an empty header
  // section is "\r\n\r\n" at 0 like any other.
  const auto end = header_block_.find("\r\n\r\n", old_size >= 3 ? old_size - 3 : 0);
  if (end == std::string::npos) {
    if (header_block_.size() > kMaxHeaderBlock) fail("multipart part headers too large");
    return std::string_view::npos;
  }
  PartHeaders headers;
  std::string_view lines = std::string_view(header_block_).substr(0, end + 2);
  lines.remove_prefix(2);
  while (!lines.empty()) {
    const auto eol = lines.find("\r\n");
    const std::string_view line = lines.substr(0, eol);
    lines.remove_prefix(eol + 2);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      fail("malformed multipart part header line");
      return std::string_view::npos;
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);  // as python-multipart
    headers.fields.emplace_back(ascii_lower(line.substr(0, colon)), std::string(value));
  }
  const std::size_t consumed = end + 4 - old_size;
  header_block_.clear();
  sink_.on_part_begin(headers);
  return consumed;
}

bool StreamingParser::feed(std::string_view chunk) {
  while (!chunk.empty()) {
    switch (state_) {
      case State::failed:
        return false;
      case State::epilogue:
        return true;
      case State::preamble:
      case State::data: {
        const bool in_part = state_ == State::data;
        const auto next = scan_for_delimiter(chunk, in_part);
        if (next == std::string_view::npos) return true;
        if (in_part) sink_.on_part_end();
        chunk.remove_prefix(next);
        after_.clear();
        state_ = State::after_delimiter;
        break;
      }
      case State::after_delimiter: {
        while (after_.size() < 2 && !chunk.empty()) {
          after_.push_back(chunk.front());
          chunk.remove_prefix(1);
        }
        if (after_.size() < 2) return true;
        if (after_ == "--") {
          state_ = State::epilogue;
        } else if (after_ == "\r\n") {
          header_block_ = "\r\n";
          state_ = State::headers;
        } else {
          return fail("multipart delimiter not followed by CRLF or \"--\"");
        }
        break;
      }
      case State::headers: {
        const auto consumed = take_headers(chunk);
        if (state_ == State::failed) return false;
        if (consumed == std::string_view::npos) return true;
        chunk.remove_prefix(consumed);
        pending_.clear();
        state_ = State::data;
        break;
      }
    }
  }
  return state_ != State::failed;
}

}  // namespace modeldrop::test::multipart
