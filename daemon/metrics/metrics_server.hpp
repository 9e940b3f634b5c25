#pragma once

// The HTTP endpoint Prometheus scrapes: GET/HEAD of /metrics (and / with a link to it).
//
// A small Beast server on the daemon's own event loop rather than prometheus-cpp's civetweb
// exposer: civetweb would add a thread pool, its own socket handling and a lock shared with
// the loop, while here every scrape is a few microseconds of serialising on the loop that
// already owns the values, and the bounds (connections, request size and time, methods) are
// ours to choose and test. Nothing in it blocks: the database gauges are read elsewhere.

#include "common/error.hpp"
#include "config/config.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace modeldrop::metrics {

struct ServerLimits {
  // Past this many open connections, the oldest one still waiting for its request is closed.
  std::size_t max_connections = 64;
  std::size_t max_header_bytes = 8 * 1024;
  std::chrono::milliseconds request_timeout{10'000};   // to read one whole request
  std::chrono::milliseconds response_timeout{10'000};  // to write one response
};

class MetricsServer {
 public:
  // Produces the exposition text, possibly later (after a database read); calls `reply` once.
  using Collect = std::function<void(std::function<void(std::string)> reply)>;

  // Binds and listens: a port in use (or an address that is not ours) is an error naming it.
  static Result<std::unique_ptr<MetricsServer>> start(boost::asio::io_context& io, const config::ListenAddress& listen,
                                                      Collect collect, ServerLimits limits = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Where it listens, with the port the system chose when the config said 0.
  [[nodiscard]] std::string local_address() const;
  [[nodiscard]] std::size_t open_connections() const;
  // Stops accepting and closes every connection.
  void stop();

  struct Impl;

 private:
  explicit MetricsServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace modeldrop::metrics
