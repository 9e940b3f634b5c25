#pragma once

// Internal to the upload component: what every exchange of one UploadPool shares.

#include "upload/bandwidth.hpp"
#include "upload/connection_cache.hpp"
#include "upload/route.hpp"
#include "upload/tls_connection.hpp"
#include "upload/upload_pool.hpp"

#include <map>
#include <memory>
#include <random>

namespace modeldrop::upload {

class Exchange;

// A token or header value that can go into a header line as is.
bool is_header_safe(std::string_view text);

// Exchanges hold it by shared_ptr; it knows them only weakly, so an exchange lives exactly as
// long as one of its handlers is pending.
struct UploadPool::Core : std::enable_shared_from_this<UploadPool::Core> {
  Core(asio::io_context& io_context, PoolSettings pool_settings) : io(io_context), settings(std::move(pool_settings)) {}

  asio::io_context& io;
  PoolSettings settings;
  Route route;
  std::shared_ptr<ssl::context> tls_context;
  TokenBucket bucket{0, SteadyClock::now()};
  ConnectionCache idle;
  std::map<Exchange*, std::weak_ptr<Exchange>> in_flight;
  std::size_t uploads_in_flight = 0;
  std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t next_connection_id = 1;
  ExchangeObserver observer;

  std::unique_ptr<Connection> new_connection() {
    return std::make_unique<Connection>(io, tls_context, route.origin.tls, next_connection_id++);
  }
  void keep_idle(std::unique_ptr<Connection> connection) {
    idle.keep(std::move(connection), static_cast<std::size_t>(std::max(settings.sessions, 1)));
  }

  // Validates everything first: a failure leaves the previous settings in place.
  Result<void> configure(const PoolSettings& next);
};

}  // namespace modeldrop::upload
