#pragma once

// A plain blocking HTTP/1.1 client over TCP for tests of the metrics endpoint (and of
// Prometheus): one request per connection, every call bounded by a timeout.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace modeldrop::test {

struct HttpReply {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
};

// A socket listening on 127.0.0.1 at a port the system chose (stored in `port`), or -1: a port
// in use, or (closed at once) a port free a moment ago.
int listen_on_loopback(std::uint16_t& port);

// A connected socket to host:port (numeric IPv4 or IPv6), or -1.
int connect_tcp(const std::string& host, std::uint16_t port);

// Sends `request` as is and reads until the server closes or `timeout` passes.
std::optional<std::string> exchange(const std::string& host, std::uint16_t port, std::string_view request,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(5));

// `method target` with Connection: close; nullopt when nothing parseable came back in time.
std::optional<HttpReply> http_request(const std::string& host, std::uint16_t port, std::string_view method,
                                      std::string_view target,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

inline std::optional<HttpReply> http_get(std::uint16_t port, std::string_view target,
                                         std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  return http_request("127.0.0.1", port, "GET", target, timeout);
}

}  // namespace modeldrop::test
