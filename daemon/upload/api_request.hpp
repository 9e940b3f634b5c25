#pragma once

// One JSON call on the API (file listing, probes, model registration): what the caller asks and
// what it gets back, classified by the same rules as an upload's answer. Free of Asio and Beast.

#include "common/duration.hpp"
#include "common/timestamp.hpp"
#include "upload/attempt.hpp"
#include "upload/retry_policy.hpp"

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modeldrop::upload {

enum class ApiVerb { get, post, put, patch, del };

std::string_view to_string(ApiVerb verb);

struct ApiRequest {
  using Query = std::vector<std::pair<std::string, std::string>>;
  static ApiRequest get(std::string path, Query query = {});
  static ApiRequest post(std::string path, boost::json::value body, Query query = {});

  ApiVerb verb = ApiVerb::get;
  std::string path;                        // below api.base_url, e.g. "/v1/files"
  Query query;                             // percent-encoded when sent
  std::optional<boost::json::value> body;  // sent as application/json
  std::optional<std::string> token;        // instead of the pool's token; a secret
};

// The path and query as they go on the request line, below `path_prefix` (the base URL's path).
std::string request_target(std::string_view path_prefix, const ApiRequest& request);

struct ApiAnswer {
  UploadResult exchange;  // status, headers, raw body, or the transport error
  // succeeded (2xx whose body is JSON), retry, failed, hold_auth, hold_rate_limit or cancelled,
  // exactly as an upload's answer with the same status or error would be.
  Verdict verdict = Verdict::retry;
  std::string reason;                    // one line for logs and last_error; empty on success
  std::optional<Duration> server_delay;  // Retry-After / retry-after-ms
  boost::json::value json;               // the parsed body (null when it is not JSON)

  [[nodiscard]] bool ok() const { return verdict == Verdict::succeeded; }
  [[nodiscard]] std::optional<int> status() const { return exchange.http_status; }
};

ApiAnswer classify_api_answer(UploadResult exchange, WallTime now);

}  // namespace modeldrop::upload
