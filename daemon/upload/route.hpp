#pragma once

// Where a request goes: the API's origin, taken apart once from api.base_url, and the CONNECT
// proxy (if any) it is reached through. Plain C++; the connection code uses it.

#include "common/error.hpp"
#include "upload/proxy.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace modeldrop::upload {

struct Origin {
  bool tls = true;
  std::string host;         // for DNS, SNI and the certificate check (IPv6 without brackets)
  std::string port;         // numeric service
  std::string host_header;  // "host[:port]" as in the URL
  std::string path_prefix;  // the base URL's path, no trailing slash

  friend bool operator==(const Origin&, const Origin&) = default;
};

Result<Origin> parse_origin(const std::string& base_url);

struct Route {
  Origin origin;
  std::optional<ProxyEndpoint> proxy;

  // The first hop: the proxy when there is one, else the origin.
  [[nodiscard]] const std::string& dial_host() const;
  [[nodiscard]] std::string dial_port() const;
  // The first hop as messages name it, e.g. "proxy host:3128 (HTTPS_PROXY)".
  [[nodiscard]] std::string peer_name() const;
  // The CONNECT request that opens the tunnel to the origin (with the proxy's credentials).
  [[nodiscard]] std::string connect_request(std::string_view user_agent) const;
};

}  // namespace modeldrop::upload
