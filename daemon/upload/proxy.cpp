#include "upload/proxy.hpp"

#include "common/text.hpp"

#include <openssl/evp.h>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <arpa/inet.h>
#include <array>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace modeldrop::upload {
namespace {

std::optional<std::string> first_set(const char* preferred, const char* fallback) {
  for (const char* name : {preferred, fallback}) {
    if (const char* value = std::getenv(name); value != nullptr && *value != '\0') return std::string(value);
  }
  return std::nullopt;
}

std::string strip_brackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return std::string(host);
}

std::string base64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// An IPv4 or IPv6 address as bytes (4 or 16), or nothing for a host name.
std::optional<std::vector<unsigned char>> parse_ip(const std::string& text) {
  std::array<unsigned char, 16> bytes{};
  if (::inet_pton(AF_INET, text.c_str(), bytes.data()) == 1)
    return std::vector<unsigned char>(bytes.begin(), bytes.begin() + 4);
  if (::inet_pton(AF_INET6, text.c_str(), bytes.data()) == 1)
    return std::vector<unsigned char>(bytes.begin(), bytes.end());
  return std::nullopt;
}

bool prefix_matches(const std::vector<unsigned char>& a, const std::vector<unsigned char>& b, unsigned bits) {
  if (a.size() != b.size() || bits > a.size() * 8) return false;
  std::size_t i = 0;
  for (; bits >= 8; bits -= 8, ++i) {
    if (a[i] != b[i]) return false;
  }
  if (bits == 0) return true;
  const auto mask = static_cast<unsigned char>(0xFFU << (8 - bits));
  return (a[i] & mask) == (b[i] & mask);
}

bool entry_matches(std::string_view entry, const std::string& host,
                   const std::optional<std::vector<unsigned char>>& host_ip) {
  if (entry == "*") return true;
  std::string pattern = ascii_lower(entry);
  if (host_ip) {
    unsigned bits = static_cast<unsigned>(host_ip->size() * 8);
    if (const auto slash = pattern.find('/'); slash != std::string::npos) {
      const std::string_view digits = std::string_view(pattern).substr(slash + 1);
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
      if (ec != std::errc{} || end != digits.data() + digits.size()) return false;
      pattern.resize(slash);
    }
    const auto network = parse_ip(strip_brackets(pattern));
    return network && prefix_matches(*host_ip, *network, bits);
  }
  if (!pattern.empty() && pattern.front() == '.') pattern.erase(0, 1);
  if (pattern.empty()) return false;
  if (host == pattern) return true;
  return host.size() > pattern.size() && host.ends_with(pattern) && host[host.size() - pattern.size() - 1] == '.';
}

}  // namespace

ProxyEnvironment ProxyEnvironment::from_process() {
  return ProxyEnvironment{first_set("https_proxy", "HTTPS_PROXY"), first_set("no_proxy", "NO_PROXY")};
}

Result<ProxyEndpoint> parse_proxy_url(std::string_view url, std::string source) {
  std::string text(trim(url));
  if (text.find("://") == std::string::npos) text = "http://" + text;
  const auto parsed = boost::urls::parse_absolute_uri(text);
  // The URL is not echoed: it may carry a password.
  if (!parsed || parsed->host().empty()) return make_error(source + " is not a proxy URL such as http://host:port");
  const std::string scheme = ascii_lower(parsed->scheme());
  if (scheme != "http") {
    return make_error(source + " uses " + scheme + "://; only http:// (CONNECT) proxies are supported");
  }
  ProxyEndpoint endpoint;
  endpoint.source = std::move(source);
  endpoint.host = strip_brackets(parsed->encoded_host());
  endpoint.port = 1080;
  if (parsed->has_port()) {
    const auto port = parsed->port_number();
    if (port == 0) return make_error(endpoint.source + " has an invalid port");
    endpoint.port = port;
  }
  if (parsed->has_userinfo()) {
    endpoint.authorization = "Basic " + base64(parsed->user() + ":" + parsed->password());
  }
  return endpoint;
}

bool no_proxy_matches(std::string_view no_proxy, std::string_view host) {
  const std::string name = ascii_lower(strip_brackets(host));
  const auto host_ip = parse_ip(name);
  std::size_t start = 0;
  while (start <= no_proxy.size()) {
    std::size_t end = no_proxy.find_first_of(", ", start);
    if (end == std::string_view::npos) end = no_proxy.size();
    const std::string_view entry = trim(no_proxy.substr(start, end - start));
    if (!entry.empty() && entry_matches(entry, name, host_ip)) return true;
    start = end + 1;
  }
  return false;
}

Result<std::optional<ProxyEndpoint>> choose_proxy(std::string_view host, const std::optional<std::string>& configured,
                                                  const ProxyEnvironment& environment) {
  if (configured) {
    auto endpoint = parse_proxy_url(*configured, "api.proxy");
    if (!endpoint) return endpoint.error();
    return std::optional<ProxyEndpoint>(std::move(*endpoint));
  }
  if (!environment.https_proxy) return std::optional<ProxyEndpoint>();
  if (environment.no_proxy && no_proxy_matches(*environment.no_proxy, host)) return std::optional<ProxyEndpoint>();
  auto endpoint = parse_proxy_url(*environment.https_proxy, "HTTPS_PROXY");
  if (!endpoint) return endpoint.error();
  return std::optional<ProxyEndpoint>(std::move(*endpoint));
}

}  // namespace modeldrop::upload
