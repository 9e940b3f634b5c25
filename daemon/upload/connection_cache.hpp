#pragma once

// Internal to the upload component: kept-alive connections waiting for the next request.

#include "upload/tls_connection.hpp"

#include <cstddef>
#include <memory>
#include <vector>

namespace modeldrop::upload {

class ConnectionCache {
 public:
  ConnectionCache() : idle_(std::make_shared<std::vector<std::unique_ptr<Connection>>>()) {}

  // The most recently used live idle connection, if any.
  std::unique_ptr<Connection> take();

  // Keeps a connection whose exchange ended cleanly, at most `limit` of them (the oldest go),
  // and drops it as soon as the server closes it, so a reconnect happens before, not during,
  // the next request.
  void keep(std::unique_ptr<Connection> connection, std::size_t limit);

  void close_all();
  [[nodiscard]] std::size_t size() const { return idle_->size(); }

 private:
  using Idle = std::vector<std::unique_ptr<Connection>>;
  static void drop(Idle& idle, std::uint64_t id);

  // Shared with the watches that keep() starts, which may complete after the cache is gone.
  std::shared_ptr<Idle> idle_;
};

}  // namespace modeldrop::upload
