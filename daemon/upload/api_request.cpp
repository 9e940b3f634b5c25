#include "upload/api_request.hpp"

#include <boost/json/parse.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

namespace modeldrop::upload {

std::string_view to_string(ApiVerb verb) {
  switch (verb) {
    case ApiVerb::get:
      return "GET";
    case ApiVerb::post:
      return "POST";
    case ApiVerb::put:
      return "PUT";
    case ApiVerb::patch:
      return "PATCH";
    case ApiVerb::del:
      return "DELETE";
  }
  return "GET";
}

ApiRequest ApiRequest::get(std::string path, Query query) {
  ApiRequest request;
  request.path = std::move(path);
  request.query = std::move(query);
  return request;
}

ApiRequest ApiRequest::post(std::string path, boost::json::value body, Query query) {
  ApiRequest request;
  request.verb = ApiVerb::post;
  request.path = std::move(path);
  request.query = std::move(query);
  request.body = std::move(body);
  return request;
}

std::string request_target(std::string_view path_prefix, const ApiRequest& request) {
  std::string target = std::string(path_prefix) + request.path;
  char separator = '?';
  for (const auto& [name, value] : request.query) {
    target += separator;
    target += boost::urls::encode(name, boost::urls::unreserved_chars);
    target += '=';
    target += boost::urls::encode(value, boost::urls::unreserved_chars);
    separator = '&';
  }
  return target;
}

ApiAnswer classify_api_answer(UploadResult exchange, WallTime now) {
  ApiAnswer answer;
  Classification c = classify_transport_or_status(exchange, now);
  boost::system::error_code ec;
  if (exchange.http_status && !exchange.body.empty()) answer.json = boost::json::parse(exchange.body, ec);
  if (ec) answer.json = nullptr;
  if (c.verdict == Verdict::succeeded && ec) {
    c.verdict = Verdict::retry;
    c.reason = "HTTP " + std::to_string(*exchange.http_status) + ": malformed response (not JSON)";
  }
  answer.verdict = c.verdict;
  answer.reason = std::move(c.reason);
  answer.server_delay = c.server_delay;
  answer.exchange = std::move(exchange);
  return answer;
}

}  // namespace modeldrop::upload
