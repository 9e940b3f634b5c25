#pragma once

// The HTTPS session pool: sends archives to POST /v0/models/upload and makes the API's JSON
// calls, all over one TLS context, connection cache, proxy route, token and set of timeouts.
// Everything runs on the caller's io_context thread; callbacks are invoked on it.
// Beast and Asio stay inside the component's .cpp files and internal headers.

#include "common/error.hpp"
#include "common/version.hpp"
#include "config/config.hpp"
#include "upload/api_request.hpp"
#include "upload/attempt.hpp"
#include "upload/proxy.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace modeldrop::upload {

struct PoolSettings {
  config::ApiConfig api;
  int sessions = 4;                        // concurrent uploads (gets and probes come on top)
  std::uint64_t max_bytes_per_second = 0;  // 0 = unlimited; one budget for every session
  std::string token;                       // a secret: never logged, never in a message
  std::string user_agent = std::string("modeldrop/") + kVersion;
  ProxyEnvironment proxy_environment = ProxyEnvironment::from_process();
  // How much of the file one read() brings in and one burst of writes sends; per upload.
  std::size_t io_buffer_bytes = 1U << 20U;
};

// Every exchange, upload or API call, as it ends: whether the server answered and how.
struct ExchangeSeen {
  std::string_view method;  // "POST"
  std::string_view path;    // "/v0/models/upload", "/v1/files": no base path, no query
  std::optional<int> http_status;
  AttemptError error = AttemptError::none;
};
using ExchangeObserver = std::function<void(const ExchangeSeen&)>;

class UploadPool {
 public:
  // Fails when the TLS context cannot be built (unreadable ca_file), the base URL or the
  // proxy URL cannot be used, or the token cannot go into a header.
  static Result<std::unique_ptr<UploadPool>> create(boost::asio::io_context& io, PoolSettings settings);

  // Must be destroyed before its io_context. Uploads still in flight are aborted; their
  // `done` runs only if the io_context runs again.
  ~UploadPool();
  UploadPool(const UploadPool&) = delete;
  UploadPool& operator=(const UploadPool&) = delete;

  // Sessions minus uploads in flight. The caller starts an upload only when this is > 0.
  [[nodiscard]] std::size_t free_sessions() const;
  [[nodiscard]] std::size_t uploads_in_flight() const;
  [[nodiscard]] std::size_t idle_connections() const;

  // `progress` reports file bytes sent, at most every 250 ms; `done` runs exactly once,
  // never from inside start() itself.
  void start(UploadRequest request, std::function<void(std::uint64_t bytes_sent)> progress,
             std::function<void(UploadResult)> done);

  // True when the job was in flight; its `done` follows with AttemptError::cancelled at once
  // (well within 1 s), unless the attempt had already finished.
  bool cancel(std::int64_t job_id);

  // Shutdown: every upload and request in flight ends as cancelled; idle connections close.
  void cancel_all();

  // SIGHUP: token, sessions, bandwidth cap, timeouts, CA, proxy for attempts started from now
  // on. A failure (e.g. unreadable ca_file) leaves the previous settings in place.
  Result<void> apply(PoolSettings settings);

  // One JSON call on the API with the uploads' TLS, connection cache, proxy, token and timeouts;
  // its answer is classified as an upload's would be. Does not count against `sessions`.
  // `done` runs exactly once, never from inside request() itself.
  void request(ApiRequest request, std::function<void(ApiAnswer)> done);

  // Sees every exchange that ends, on the io_context thread (e.g. to count responses).
  void set_exchange_observer(ExchangeObserver observer);

  struct Core;

 private:
  explicit UploadPool(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

}  // namespace modeldrop::upload
