#pragma once

// GET /v1/files as the API shapes it (an OpenAI list object, cursor pagination with `after`),
// as pure functions over the stored files so that paging is tested without a server.

#include "support/fake_api/fake_api.hpp"

#include <boost/url/params_view.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace modeldrop::test {

struct ListQuery {
  std::size_t limit = 10000;  // OpenAI's default and maximum
  std::optional<std::string> after;
  bool newest_first = true;  // order=desc (the default) or asc
  std::optional<std::string> project_id;
  std::optional<std::string> purpose;
};

// The query, or the 422 body FastAPI would send for a bad `limit` or `order`.
std::variant<ListQuery, std::string> parse_list_query(const boost::urls::params_view& params);

struct ListPage {
  std::vector<ReceivedFile> data;
  bool has_more = false;
};

// One page of `stored` (oldest first, as uploaded): the files of the project (and purpose) in
// the asked order, starting after the file `after` (an unknown id gives an empty page), at most
// min(limit, page_cap) of them.
ListPage list_page(const std::vector<ReceivedFile>& stored, const ListQuery& query, std::size_t page_cap);

// {"object":"list","data":[…],"has_more":…,"first_id":…,"last_id":…}
std::string list_page_json(const ListPage& page);

}  // namespace modeldrop::test
