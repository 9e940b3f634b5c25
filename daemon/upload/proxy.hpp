#pragma once

#include "common/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace modeldrop::upload {

// The proxy variables of the environment, captured once (tests pass their own).
struct ProxyEnvironment {
  std::optional<std::string> https_proxy;  // $https_proxy, else $HTTPS_PROXY
  std::optional<std::string> no_proxy;     // $no_proxy, else $NO_PROXY

  static ProxyEnvironment from_process();
};

// An HTTP proxy that tunnels TLS with CONNECT.
struct ProxyEndpoint {
  std::string host;  // without brackets for IPv6
  std::uint16_t port = 0;
  std::string source;                        // "api.proxy" or "HTTPS_PROXY", for messages
  std::optional<std::string> authorization;  // "Basic ..." when the URL has a user name; a secret
};

// "http://host:port", "host:port" or "http://user:pass@host" (port 1080 as in curl). Only
// plain-http proxies: TLS to the proxy itself is not supported.
Result<ProxyEndpoint> parse_proxy_url(std::string_view url, std::string source);

// curl's NO_PROXY rules: "*" matches everything; otherwise comma-separated names (matching
// the host and its subdomains, a leading dot ignored), IP addresses and CIDR ranges.
bool no_proxy_matches(std::string_view no_proxy, std::string_view host);

// The proxy to reach `host` through, if any: api.proxy when configured, else the environment's
// HTTPS proxy unless NO_PROXY exempts the host.
Result<std::optional<ProxyEndpoint>> choose_proxy(std::string_view host, const std::optional<std::string>& configured,
                                                  const ProxyEnvironment& environment);

}  // namespace modeldrop::upload
