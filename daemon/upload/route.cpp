#include "upload/route.hpp"

#include "common/text.hpp"

#include <boost/url/parse.hpp>

namespace modeldrop::upload {
namespace {

std::string strip_brackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return std::string(host);
}

}  // namespace

Result<Origin> parse_origin(const std::string& base_url) {
  const auto url = boost::urls::parse_absolute_uri(base_url);
  if (!url || !url->has_authority() || url->host().empty()) {
    return make_error("api.base_url " + base_url + " is not an absolute URL");
  }
  Origin origin;
  const std::string scheme = ascii_lower(url->scheme());
  if (scheme != "https" && scheme != "http") return make_error("api.base_url must use https, got " + scheme);
  origin.tls = scheme == "https";
  origin.host = strip_brackets(url->host());
  origin.port = url->has_port() ? std::string(url->port()) : (origin.tls ? "443" : "80");
  origin.host_header = std::string(url->encoded_host());
  if (url->has_port()) origin.host_header += ":" + std::string(url->port());
  origin.path_prefix = std::string(url->encoded_path());
  while (!origin.path_prefix.empty() && origin.path_prefix.back() == '/') origin.path_prefix.pop_back();
  return origin;
}

const std::string& Route::dial_host() const {
  return proxy ? proxy->host : origin.host;
}

std::string Route::dial_port() const {
  return proxy ? std::to_string(proxy->port) : origin.port;
}

std::string Route::peer_name() const {
  if (proxy) return "proxy " + proxy->host + ":" + std::to_string(proxy->port) + " (" + proxy->source + ")";
  return origin.host + ":" + origin.port;
}

std::string Route::connect_request(std::string_view user_agent) const {
  const std::string authority =
      (origin.host.find(':') != std::string::npos ? "[" + origin.host + "]" : origin.host) + ":" + origin.port;
  std::string request = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n";
  if (proxy && proxy->authorization) request += "Proxy-Authorization: " + *proxy->authorization + "\r\n";
  request += "User-Agent: " + std::string(user_agent) + "\r\n\r\n";
  return request;
}

}  // namespace modeldrop::upload
