#include "upload/api_responses.hpp"

#include "common/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace modeldrop::upload {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxDetailChars = 500;

std::optional<json::value> parse_json(std::string_view body) {
  boost::system::error_code ec;
  json::value value = json::parse(body, ec);
  if (ec) return std::nullopt;
  return value;
}

std::optional<std::string> string_field(const json::object& object, std::string_view key) {
  const auto* v = object.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

std::optional<std::int64_t> integer_field(const json::object& object, std::string_view key) {
  const auto* v = object.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    return static_cast<std::int64_t>(v->as_uint64());
  }
  return std::nullopt;
}

std::optional<OpenAIFile> file_from(const json::value& value) {
  const auto* object = value.if_object();
  if (object == nullptr) return std::nullopt;
  auto id = string_field(*object, "id");
  if (!id || id->empty()) return std::nullopt;
  OpenAIFile file;
  file.id = std::move(*id);
  file.bytes = integer_field(*object, "bytes");
  file.filename = string_field(*object, "filename");
  file.created_at = integer_field(*object, "created_at");
  file.status = string_field(*object, "status");
  file.status_details = string_field(*object, "status_details");
  return file;
}

std::string bounded(std::string text) {
  text = sanitize_utf8(text);
  if (text.size() > kMaxDetailChars) {
    // Cut before the character that straddles the bound, not through it (that showed as U+FFFD).
    std::size_t cut = kMaxDetailChars;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U) --cut;
    text.resize(cut);
    text += "…";
  }
  return text;
}

std::string location_text(const json::value& loc) {
  const auto* parts = loc.if_array();
  if (parts == nullptr) return {};
  std::string out;
  for (const auto& part : *parts) {
    if (!out.empty()) out += '.';
    if (part.is_string()) {
      out += std::string(part.as_string());
    } else if (part.is_int64()) {
      out += std::to_string(part.as_int64());
    }
  }
  return out;
}

}  // namespace

std::optional<OpenAIFile> parse_openai_file(std::string_view body) {
  auto value = parse_json(body);
  if (!value) return std::nullopt;
  return file_from(*value);
}

std::optional<FilePage> parse_file_page(std::string_view body) {
  auto value = parse_json(body);
  if (!value || !value->is_object()) return std::nullopt;
  const auto& object = value->as_object();
  const auto* data = object.if_contains("data");
  if (data == nullptr || !data->is_array()) return std::nullopt;
  FilePage page;
  for (const auto& entry : data->as_array()) {
    if (auto file = file_from(entry)) page.files.push_back(std::move(*file));
  }
  if (const auto* more = object.if_contains("has_more"); more != nullptr && more->is_bool()) {
    page.has_more = more->get_bool();
  }
  page.last_id = string_field(object, "last_id");
  if (page.last_id && page.last_id->empty()) page.last_id.reset();
  return page;
}

std::optional<CustomModel> parse_custom_model(std::string_view body) {
  auto value = parse_json(body);
  if (!value || !value->is_object()) return std::nullopt;
  const auto& object = value->as_object();
  auto name = string_field(object, "name");
  if (!name || name->empty()) return std::nullopt;
  CustomModel model;
  model.name = std::move(*name);
  model.status = string_field(object, "status");
  if (auto reason = string_field(object, "status_reason")) model.status_reason = bounded(std::move(*reason));
  model.source = string_field(object, "source");
  if (!model.source) model.source = string_field(object, "file_id");
  return model;
}

std::string error_detail(std::string_view body) {
  if (auto value = parse_json(body); value && value->is_object()) {
    if (const auto* detail = value->as_object().if_contains("detail")) {
      if (detail->is_string()) return bounded(std::string(detail->as_string()));
      if (const auto* items = detail->if_array()) {
        std::string out;
        for (const auto& item : *items) {
          const auto* object = item.if_object();
          if (object == nullptr) continue;
          const auto msg = string_field(*object, "msg").value_or("invalid");
          const auto* loc = object->if_contains("loc");
          const std::string where = loc != nullptr ? location_text(*loc) : std::string();
          if (!out.empty()) out += "; ";
          out += where.empty() ? msg : where + ": " + msg;
        }
        if (!out.empty()) return bounded(out);
      }
    }
  }
  std::string_view text = trim(body);
  text = text.substr(0, text.find('\n'));
  return bounded(std::string(trim(text)));
}

}  // namespace modeldrop::upload
