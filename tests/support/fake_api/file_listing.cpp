#include "support/fake_api/file_listing.hpp"

#include "support/fake_api/fake_api_json.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>

namespace modeldrop::test {
namespace {

std::string query_error(std::string_view field, std::string_view type, std::string_view message,
                        std::string_view input) {
  boost::json::object detail{
      {"type", type}, {"loc", boost::json::array{"query", field}}, {"msg", message}, {"input", input}};
  return boost::json::serialize(boost::json::object{{"detail", boost::json::array{std::move(detail)}}});
}

}  // namespace

std::variant<ListQuery, std::string> parse_list_query(const boost::urls::params_view& params) {
  ListQuery query;
  for (const auto& param : params) {
    const std::string_view value = param.value;
    if (param.key == "ai_project_id") query.project_id = std::string(value);
    if (param.key == "purpose") query.purpose = std::string(value);
    if (param.key == "after") query.after = std::string(value);
    if (param.key == "order") {
      if (value != "asc" && value != "desc") {
        return query_error("order", "literal_error", "Input should be 'asc' or 'desc'", value);
      }
      query.newest_first = value == "desc";
    }
    if (param.key == "limit") {
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), query.limit);
      if (ec != std::errc() || end != value.data() + value.size()) {
        return query_error("limit", "int_parsing",
                           "Input should be a valid integer, unable to parse string as an integer", value);
      }
      if (query.limit < 1 || query.limit > 10000) {
        return query_error("limit", "less_than_equal", "Input should be between 1 and 10000", value);
      }
    }
  }
  return query;
}

ListPage list_page(const std::vector<ReceivedFile>& stored, const ListQuery& query, std::size_t page_cap) {
  std::vector<const ReceivedFile*> ordered;
  for (const auto& file : stored) {
    if (query.project_id && file.project_id != query.project_id) continue;
    if (query.purpose && *query.purpose != "fine-tune") continue;
    ordered.push_back(&file);
  }
  if (query.newest_first) std::reverse(ordered.begin(), ordered.end());
  auto from = ordered.begin();
  if (query.after) {
    from = std::find_if(ordered.begin(), ordered.end(), [&](const ReceivedFile* f) { return f->id == *query.after; });
    if (from != ordered.end()) ++from;
  }
  const std::size_t size = page_cap == 0 ? query.limit : std::min(query.limit, page_cap);
  ListPage page;
  for (auto it = from; it != ordered.end() && page.data.size() < size; ++it) page.data.push_back(**it);
  page.has_more = static_cast<std::size_t>(ordered.end() - from) > page.data.size();
  return page;
}

std::string list_page_json(const ListPage& page) {
  boost::json::array data;
  for (const auto& file : page.data) data.push_back(boost::json::parse(openai_file_json(file)));
  boost::json::value first = nullptr;
  boost::json::value last = nullptr;
  if (!page.data.empty()) {
    first = boost::json::string(page.data.front().id);
    last = boost::json::string(page.data.back().id);
  }
  return boost::json::serialize(boost::json::object{{"object", "list"},
                                                    {"data", std::move(data)},
                                                    {"has_more", page.has_more},
                                                    {"first_id", std::move(first)},
                                                    {"last_id", std::move(last)}});
}

}  // namespace modeldrop::test
