#include "upload/upload_pool.hpp"

#include "common/duration.hpp"
#include "common/text.hpp"
#include "upload/bandwidth.hpp"
#include "upload/multipart.hpp"
#include "upload/request_body.hpp"
#include "upload/source_file.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>

namespace modeldrop::upload {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr auto kProgressInterval = std::chrono::milliseconds(250);
constexpr std::uint32_t kMaxResponseHeader = 64U * 1024U;

// Where the API lives, taken apart once from api.base_url.
struct Origin {
  bool tls = true;
  std::string host;         // for DNS, SNI and the certificate check (IPv6 without brackets)
  std::string port;         // numeric service
  std::string host_header;  // "host[:port]" as in the URL
  std::string path_prefix;  // the base URL's path, no trailing slash

  friend bool operator==(const Origin&, const Origin&) = default;
};

std::string strip_brackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return std::string(host);
}

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

bool has_control_characters(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7F;
  });
}

std::string openssl_error_text() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

// One context for every connection: the system trust store plus api.ca_file, TLS 1.2 or later,
// the peer always verified.
Result<std::shared_ptr<ssl::context>> make_tls_context(const config::ApiConfig& api) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
  if (SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION) != 1) {
    return make_error("cannot require TLS 1.2: " + openssl_error_text());
  }
  context->set_options(ssl::context::default_workarounds | ssl::context::no_compression);
  error_code ec;
  context->set_default_verify_paths(ec);
  if (ec) return make_error("cannot load the system trust store: " + ec.message());
  if (api.ca_file) {
    context->load_verify_file(api.ca_file->string(), ec);
    if (ec)
      return make_error("api.ca_file " + api.ca_file->string() + ": cannot load CA certificates: " + ec.message());
  }
  context->set_verify_mode(ssl::verify_peer, ec);
  if (ec) return make_error("cannot enable peer verification: " + ec.message());
  return context;
}

// A BIO on the connection's socket that sends with MSG_NOSIGNAL: a peer that resets the
// connection must give EPIPE, not a SIGPIPE that ends the daemon.
BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "modeldrop socket");
    BIO_meth_set_write(m, [](BIO* bio, const char* data, int size) -> int {
      const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
      BIO_clear_retry_flags(bio);
      const ssize_t n = ::send(fd, data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) BIO_set_retry_write(bio);
      return static_cast<int>(n);
    });
    BIO_meth_set_read(m, [](BIO* bio, char* data, int size) -> int {
      const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
      BIO_clear_retry_flags(bio);
      const ssize_t n = ::recv(fd, data, static_cast<std::size_t>(size), 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) BIO_set_retry_read(bio);
      return static_cast<int>(n);
    });
    BIO_meth_set_ctrl(m, [](BIO*, int command, long, void*) -> long { return command == BIO_CTRL_FLUSH ? 1 : 0; });
    BIO_meth_set_create(m, [](BIO* bio) -> int {
      BIO_set_init(bio, 1);
      return 1;
    });
    return m;
  }();
  return method;
}

int connection_ex_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

error_code ssl_error_code(int ssl_error) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  const unsigned long code = ERR_peek_error();
  if ((ssl_error == SSL_ERROR_SYSCALL && code == 0 && errno == 0) ||
      ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    ERR_clear_error();
    return ssl::error::stream_truncated;  // the peer closed without close_notify
  }
  if (ssl_error == SSL_ERROR_SYSCALL && code == 0) return error_code(errno, boost::system::system_category());
  ERR_clear_error();
  return error_code(static_cast<int>(code), asio::error::get_ssl_category());
}

// One connection to the API (directly or through a CONNECT tunnel), TLS or, for a loopback
// http:// base URL, plain. Satisfies Beast's AsyncStream so the HTTP parser reads through it,
// and notes when bytes last moved either way: the idle deadline is measured from that.
//
// TLS runs OpenSSL directly on the non-blocking socket, waiting with Asio for readiness, as
// curl does: Asio's ssl::stream goes through a BIO pair that copies every record twice more
// (8 % of the client's CPU in the upload benchmark, see bench/upload).
class Connection {
 public:
  Connection(asio::io_context& io, std::shared_ptr<ssl::context> tls_context, bool tls, std::uint64_t id)
      : tls_context_(std::move(tls_context)), socket_(io), tls_(tls), id_(id) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (ssl_ != nullptr) SSL_free(ssl_);
  }

  using executor_type = asio::any_io_executor;
  executor_type get_executor() { return socket_.get_executor(); }

  template <class MutableBuffers, class Handler>
  void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    if (!tls_) {
      socket_.async_read_some(buffers,
                              [this, handler = std::forward<Handler>(handler)](error_code ec, std::size_t n) mutable {
                                if (n > 0) touch();
                                std::move(handler)(ec, n);
                              });
      return;
    }
    asio::mutable_buffer target;
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
      if (asio::mutable_buffer(*it).size() != 0) {
        target = *it;
        break;
      }
    }
    tls_read(target, std::forward<Handler>(handler));
  }

  // Over TLS this writes the whole buffer (record by record, noting progress as it goes) before
  // it completes: the caller hands over at most one read's worth and its bandwidth grant.
  template <class ConstBuffers, class Handler>
  void async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    if (!tls_) {
      socket_.async_write_some(buffers,
                               [this, handler = std::forward<Handler>(handler)](error_code ec, std::size_t n) mutable {
                                 if (n > 0) touch();
                                 std::move(handler)(ec, n);
                               });
      return;
    }
    const asio::const_buffer first = *asio::buffer_sequence_begin(buffers);
    tls_write(static_cast<const char*>(first.data()), first.size(), 0, std::forward<Handler>(handler));
  }

  // SNI, peer verification and the host name check belong together: every TLS connection gets
  // all three here, before its handshake.
  error_code prepare_tls(const std::string& host) {
    ssl_ = SSL_new(tls_context_->native_handle());
    if (ssl_ == nullptr) return error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category());
    BIO* bio = BIO_new(socket_bio_method());
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(socket_.native_handle())));
    SSL_set_bio(ssl_, bio, bio);
    // One record per SSL_write, so that progress is seen record by record.
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE);
    error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) return ec;
    (void)asio::ip::make_address(host, ec);
    const bool is_address = !ec;
    // SNI carries host names only (RFC 6066); an address is checked against the certificate's IP SANs.
    // SSL_set_tlsext_host_name is a macro with a C cast; this is what it expands to.
    if (!is_address &&
        SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(host.c_str())) != 1) {
      return error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category());
    }
    host_ = host;
    host_check_.emplace(host);
    SSL_set_ex_data(ssl_, connection_ex_index(), this);
    SSL_set_verify(ssl_, SSL_VERIFY_PEER, &Connection::verify);
    return {};
  }

  template <class Handler>
  void async_handshake(Handler&& handler) {
    if (!socket_.is_open()) return complete(std::forward<Handler>(handler), asio::error::bad_descriptor);
    ERR_clear_error();
    const int result = SSL_connect(ssl_);
    if (result == 1) return complete(std::forward<Handler>(handler), error_code{});
    const int error = SSL_get_error(ssl_, result);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
      socket_.async_wait(error == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write,
                         [this, handler = std::forward<Handler>(handler)](const error_code& ec) mutable {
                           if (ec) return std::move(handler)(ec);
                           async_handshake(std::move(handler));
                         });
      return;
    }
    complete(std::forward<Handler>(handler), ssl_error_code(error));
  }

  tcp::socket& socket() { return socket_; }
  [[nodiscard]] bool tls() const { return tls_; }
  [[nodiscard]] std::uint64_t id() const { return id_; }
  beast::flat_buffer& buffer() { return buffer_; }

  void touch() { last_activity_ = SteadyClock::now(); }

  // Bytes written into the socket that the peer has not acknowledged yet (SIOCOUTQ). On
  // loopback the kernel buffers megabytes: "written" is not "sent" until this drains.
  [[nodiscard]] std::uint64_t unacknowledged_bytes() {
    int queued = 0;
    if (!socket().is_open() || ::ioctl(socket().native_handle(), TIOCOUTQ, &queued) != 0 || queued < 0) return 0;
    return static_cast<std::uint64_t>(queued);
  }
  [[nodiscard]] SteadyClock::time_point last_activity() const { return last_activity_; }

  // Every pending operation then completes at once with an error; OpenSSL is not called again
  // (the descriptor number may be reused by another socket).
  void close() {
    error_code ignored;
    socket_.close(ignored);
  }

  // While it sat idle the server closed it, or sent something nobody asked for: not reusable.
  bool looks_closed() {
    if (!socket_.is_open() || (ssl_ != nullptr && SSL_pending(ssl_) > 0)) return true;
    char byte = 0;
    const ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && errno == EAGAIN);  // EWOULDBLOCK is EAGAIN on Linux
  }

  std::string verify_failure;  // why the certificate was refused, set during the handshake

 private:
  static int verify(int preverified, X509_STORE_CTX* store) {
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* self = static_cast<Connection*>(SSL_get_ex_data(ssl, connection_ex_index()));
    ssl::verify_context context(store);
    if ((*self->host_check_)(preverified != 0, context)) return 1;
    if (self->verify_failure.empty()) {
      const int error = X509_STORE_CTX_get_error(store);
      self->verify_failure = preverified != 0 || error == X509_V_OK ? "the certificate is not valid for " + self->host_
                                                                    : std::string(X509_verify_cert_error_string(error));
    }
    return 0;
  }

  // Completions never run inside the initiating call (Beast's composed operations rely on it).
  template <class Handler, class... Args>
  void complete(Handler&& handler, Args... args) {
    asio::post(socket_.get_executor(),
               [handler = std::forward<Handler>(handler), args...]() mutable { std::move(handler)(args...); });
  }

  template <class Handler>
  void tls_read(asio::mutable_buffer target, Handler&& handler) {
    if (!socket_.is_open())
      return complete(std::forward<Handler>(handler), error_code(asio::error::bad_descriptor), std::size_t{0});
    if (target.size() == 0) return complete(std::forward<Handler>(handler), error_code{}, std::size_t{0});
    ERR_clear_error();
    std::size_t n = 0;
    if (SSL_read_ex(ssl_, target.data(), target.size(), &n) == 1) {
      touch();
      return complete(std::forward<Handler>(handler), error_code{}, n);
    }
    const int error = SSL_get_error(ssl_, 0);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
      socket_.async_wait(error == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write,
                         [this, target, handler = std::forward<Handler>(handler)](const error_code& ec) mutable {
                           if (ec) return std::move(handler)(ec, std::size_t{0});
                           tls_read(target, std::move(handler));
                         });
      return;
    }
    complete(std::forward<Handler>(handler), ssl_error_code(error), std::size_t{0});
  }

  template <class Handler>
  void tls_write(const char* data, std::size_t size, std::size_t done, Handler&& handler) {
    while (done < size) {
      if (!socket_.is_open())
        return complete(std::forward<Handler>(handler), error_code(asio::error::bad_descriptor), done);
      ERR_clear_error();
      std::size_t n = 0;
      if (SSL_write_ex(ssl_, data + done, size - done, &n) == 1) {
        done += n;
        touch();
        continue;
      }
      const int error = SSL_get_error(ssl_, 0);
      if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
        // Retried with the same arguments, as OpenSSL requires after WANT_*.
        socket_.async_wait(
            error == SSL_ERROR_WANT_WRITE ? tcp::socket::wait_write : tcp::socket::wait_read,
            [this, data, size, done, handler = std::forward<Handler>(handler)](const error_code& ec) mutable {
              if (ec) return std::move(handler)(ec, done);
              tls_write(data, size, done, std::move(handler));
            });
        return;
      }
      return complete(std::forward<Handler>(handler), ssl_error_code(error), done);
    }
    complete(std::forward<Handler>(handler), error_code{}, done);
  }

  std::shared_ptr<ssl::context> tls_context_;  // outlives the SSL object made from it
  tcp::socket socket_;
  SSL* ssl_ = nullptr;
  bool tls_;
  std::uint64_t id_;
  std::string host_;
  std::optional<ssl::host_name_verification> host_check_;
  beast::flat_buffer buffer_;
  SteadyClock::time_point last_activity_ = SteadyClock::now();
};

bool is_connection_loss(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated ||
         ec == http::error::end_of_stream || ec == http::error::partial_message;
}

bool is_size_limit(const error_code& ec) {
  return ec == http::error::body_limit || ec == http::error::header_limit || ec == http::error::buffer_overflow;
}

std::string seconds_text(Duration d) {
  return format_duration(d);
}

}  // namespace

class Exchange;

// What every attempt shares. Attempts hold it by shared_ptr; it knows them only weakly, so an
// attempt lives exactly as long as one of its handlers is pending.
struct UploadPool::Core : std::enable_shared_from_this<UploadPool::Core> {
  Core(asio::io_context& io_context, PoolSettings pool_settings) : io(io_context), settings(std::move(pool_settings)) {}

  asio::io_context& io;
  PoolSettings settings;
  Origin origin;
  std::optional<ProxyEndpoint> proxy;
  std::shared_ptr<ssl::context> tls_context;
  TokenBucket bucket{0, SteadyClock::now()};
  std::vector<std::unique_ptr<Connection>> idle;
  std::map<Exchange*, std::weak_ptr<Exchange>> in_flight;
  std::size_t uploads_in_flight = 0;
  std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t next_connection_id = 1;

  std::unique_ptr<Connection> new_connection() {
    return std::make_unique<Connection>(io, tls_context, origin.tls, next_connection_id++);
  }

  // The most recently used live idle connection, if any.
  std::unique_ptr<Connection> take_idle() {
    while (!idle.empty()) {
      std::unique_ptr<Connection> connection = std::move(idle.back());
      idle.pop_back();
      error_code ignored;
      connection->socket().cancel(ignored);  // ends the watch started by keep_idle
      if (!connection->looks_closed()) return connection;
      connection->close();
    }
    return nullptr;
  }

  // Keeps a connection whose exchange ended cleanly for the next attempt, and drops it as soon
  // as the server closes it (so a reconnect happens before, not during, the next request).
  void keep_idle(std::unique_ptr<Connection> connection) {
    const auto limit = static_cast<std::size_t>(std::max(settings.sessions, 1));
    while (idle.size() >= limit) {
      idle.front()->close();
      idle.erase(idle.begin());
    }
    // By id, not pointer: a completion already queued may outlive the connection it watched.
    connection->socket().async_wait(tcp::socket::wait_read,
                                    [weak = weak_from_this(), id = connection->id()](const error_code& ec) {
                                      if (ec) return;  // cancelled: taken for reuse, or closed
                                      if (auto core = weak.lock()) core->drop_idle(id);
                                    });
    idle.push_back(std::move(connection));
  }

  void drop_idle(std::uint64_t id) {
    const auto it = std::find_if(idle.begin(), idle.end(), [&](const auto& c) { return c->id() == id; });
    if (it == idle.end()) return;
    (*it)->close();
    idle.erase(it);
  }

  void close_idle() {
    for (auto& connection : idle) connection->close();
    idle.clear();
  }

  Result<void> configure(const PoolSettings& next);
};

Result<void> UploadPool::Core::configure(const PoolSettings& next) {
  if (has_control_characters(next.token)) return make_error("the API token contains control characters");
  if (has_control_characters(next.user_agent)) return make_error("the User-Agent contains control characters");
  auto parsed_origin = parse_origin(next.api.base_url);
  if (!parsed_origin) return parsed_origin.error();
  Origin next_origin = std::move(parsed_origin).value();
  auto chosen_proxy = choose_proxy(next_origin.host, next.api.proxy, next.proxy_environment);
  if (!chosen_proxy) return chosen_proxy.error();
  auto built_context = make_tls_context(next.api);
  if (!built_context) return built_context.error();

  const bool same_route = tls_context && next_origin == origin && next.api.ca_file == settings.api.ca_file &&
                          next.api.proxy == settings.api.proxy &&
                          next.proxy_environment.https_proxy == settings.proxy_environment.https_proxy &&
                          next.proxy_environment.no_proxy == settings.proxy_environment.no_proxy;
  if (!same_route) {
    close_idle();
    origin = std::move(next_origin);
    proxy = std::move(chosen_proxy).value();
    tls_context = std::move(built_context).value();
  }
  if (bucket.rate() != next.max_bytes_per_second) bucket.set_rate(next.max_bytes_per_second, SteadyClock::now());
  settings = next;
  return {};
}

// One request and its answer on one connection: an upload (head, multipart body from the file)
// or a bodiless GET. Reads the response while it writes, so an early answer is seen at once.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<UploadPool::Core> core, std::optional<std::int64_t> job_id,
           std::function<void(UploadResult)> done)
      : core_(std::move(core)),
        job_id_(job_id),
        done_(std::move(done)),
        deadline_(core_->io),
        throttle_(core_->io),
        progress_timer_(core_->io),
        resolver_(core_->io),
        started_at_(SteadyClock::now()) {}

  [[nodiscard]] std::optional<std::int64_t> job_id() const { return job_id_; }

  void start_upload(const UploadRequest& request, std::function<void(std::uint64_t)> progress) {
    progress_ = std::move(progress);
    auto file = SourceFile::open(request.path, request.expected);
    if (!file) {
      fail_before_connecting(file.error());
      return;
    }
    const MultipartFraming framing = make_multipart_framing(request.filename, make_boundary(core_->rng));
    std::string target = core_->origin.path_prefix + "/v0/models/upload";
    if (request.project_id) {
      target += "?ai_project_id=" + boost::urls::encode(*request.project_id, boost::urls::unreserved_chars);
    }
    std::string head =
        request_head(http::verb::post, target, framing.content_type(), framing.content_length(file->size()));
    upload_.emplace(std::move(head), framing, std::move(*file), request.compute_sha256);
    total_ = upload_->total_size();
    buffer_size_ = std::max<std::size_t>(core_->settings.io_buffer_bytes, 64U * 1024U);
    buffer_ = std::make_unique_for_overwrite<std::byte[]>(buffer_size_);
    connect();
  }

  void start_get(const std::string& target) {
    const std::string head = request_head(http::verb::get, core_->origin.path_prefix + target, {}, std::nullopt);
    buffer_size_ = head.size();
    buffer_ = std::make_unique_for_overwrite<std::byte[]>(buffer_size_);
    std::memcpy(buffer_.get(), head.data(), head.size());
    buffer_end_ = head.size();
    total_ = head.size();
    connect();
  }

  // Ends the attempt with `error` unless it already has a reason: every pending operation
  // completes at once (the socket closes), then `done` runs.
  void abort(AttemptError error, std::string message) {
    if (finished_) return;
    if (!aborted_) {
      aborted_ = true;
      abort_error_ = error;
      abort_message_ = std::move(message);
    }
    deadline_.cancel();
    throttle_.cancel();
    progress_timer_.cancel();
    resolver_.cancel();
    if (connection_) connection_->close();
    // Never `done` from inside cancel(): the caller may be iterating over its own jobs.
    asio::post(core_->io, [self = shared_from_this()] { self->maybe_finish(); });
  }

 private:
  std::string request_head(http::verb method, const std::string& target, const std::string& content_type,
                           std::optional<std::uint64_t> content_length) const {
    const PoolSettings& settings = core_->settings;
    http::request<http::empty_body> request{method, target, 11};
    request.set(http::field::host, core_->origin.host_header);
    request.set(http::field::authorization, "Bearer " + settings.token);
    request.set(http::field::user_agent, settings.user_agent);
    request.set(http::field::accept, "application/json");
    if (!content_type.empty()) request.set(http::field::content_type, content_type);
    // Content-Length, never chunked (docs/http.md): the body's size is known before it is read.
    if (content_length) request.set(http::field::content_length, std::to_string(*content_length));
    http::request_serializer<http::empty_body> serializer{request};
    serializer.split(true);
    std::string head;
    error_code ec;
    while (!ec && !serializer.is_header_done()) {
      serializer.next(ec, [&](error_code&, const auto& buffers) {
        for (const auto buffer : beast::buffers_range_ref(buffers)) {
          head.append(static_cast<const char*>(buffer.data()), buffer.size());
        }
        serializer.consume(beast::buffer_bytes(buffers));
      });
    }
    return head;
  }

  void fail_before_connecting(const FileProblem& problem) {
    aborted_ = true;
    abort_error_ = problem.error;
    abort_message_ = problem.message;
    // `done` never runs inside start(): the caller may still be setting up around it.
    asio::post(core_->io, [self = shared_from_this()] { self->maybe_finish(); });
  }

  // --- connection -------------------------------------------------------------------------

  void connect() {
    arm_deadline(SteadyClock::now() + core_->settings.api.connect_timeout);
    if (auto reused = core_->take_idle()) {
      connection_ = std::move(reused);
      result_.reused_connection = true;
      begin_exchange();
      return;
    }
    connection_ = core_->new_connection();
    const bool via_proxy = core_->proxy.has_value();
    const std::string& host = via_proxy ? core_->proxy->host : core_->origin.host;
    const std::string port = via_proxy ? std::to_string(core_->proxy->port) : core_->origin.port;
    connecting_ = true;
    resolver_.async_resolve(
        host, port, [self = shared_from_this()](const error_code& ec, const tcp::resolver::results_type& results) {
          self->on_resolved(ec, results);
        });
  }

  [[nodiscard]] std::string peer_name() const {
    if (core_->proxy)
      return "proxy " + core_->proxy->host + ":" + std::to_string(core_->proxy->port) + " (" + core_->proxy->source +
             ")";
    return core_->origin.host + ":" + core_->origin.port;
  }

  void on_resolved(const error_code& ec, const tcp::resolver::results_type& results) {
    if (aborted_) return connect_step_ended();
    if (ec) {
      connecting_ = false;
      return abort(AttemptError::connect_failed, "cannot resolve " + peer_name() + ": " + ec.message());
    }
    asio::async_connect(
        connection_->socket(), results,
        [self = shared_from_this()](const error_code& error, const tcp::endpoint&) { self->on_connected(error); });
  }

  void on_connected(const error_code& ec) {
    if (aborted_) return connect_step_ended();
    if (ec) {
      connecting_ = false;
      return abort(AttemptError::connect_failed, "cannot connect to " + peer_name() + ": " + ec.message());
    }
    error_code ignored;
    connection_->socket().set_option(tcp::no_delay(true), ignored);  // the last record must not wait for an ACK
    if (core_->proxy) return send_connect_request();
    start_tls_or_exchange();
  }

  void send_connect_request() {
    const std::string authority =
        (core_->origin.host.find(':') != std::string::npos ? "[" + core_->origin.host + "]" : core_->origin.host) +
        ":" + core_->origin.port;
    connect_request_ = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n";
    if (core_->proxy->authorization)
      connect_request_ += "Proxy-Authorization: " + *core_->proxy->authorization + "\r\n";
    connect_request_ += "User-Agent: " + core_->settings.user_agent + "\r\n\r\n";
    asio::async_write(
        connection_->socket(), asio::buffer(connect_request_),
        [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_connect_request_sent(ec); });
  }

  void on_connect_request_sent(const error_code& ec) {
    if (aborted_) return connect_step_ended();
    if (ec) {
      connecting_ = false;
      return abort(AttemptError::proxy_failed, peer_name() + " closed the connection: " + ec.message());
    }
    proxy_parser_.emplace();
    proxy_parser_->skip(true);  // a 2xx to CONNECT has no body: the tunnel starts right after the head
    http::async_read_header(
        connection_->socket(), connection_->buffer(), *proxy_parser_,
        [self = shared_from_this()](const error_code& error, std::size_t) { self->on_proxy_answer(error); });
  }

  void on_proxy_answer(const error_code& ec) {
    if (aborted_) return connect_step_ended();
    if (ec) {
      connecting_ = false;
      return abort(AttemptError::proxy_failed, peer_name() + " did not answer CONNECT: " + ec.message());
    }
    const auto& answer = proxy_parser_->get();
    if (answer.result_int() / 100U != 2U) {
      connecting_ = false;
      return abort(AttemptError::proxy_failed, peer_name() +
                                                   " refused CONNECT: " + std::to_string(answer.result_int()) + " " +
                                                   std::string(answer.reason()));
    }
    if (connection_->buffer().size() != 0) {
      connecting_ = false;
      return abort(AttemptError::proxy_failed, peer_name() + " sent data before the TLS handshake");
    }
    proxy_parser_.reset();
    start_tls_or_exchange();
  }

  void start_tls_or_exchange() {
    if (!connection_->tls()) {
      connecting_ = false;
      return begin_exchange();
    }
    if (const error_code ec = connection_->prepare_tls(core_->origin.host)) {
      connecting_ = false;
      return abort(AttemptError::tls_failed, "cannot set up TLS for " + core_->origin.host + ": " + ec.message());
    }
    connection_->async_handshake([self = shared_from_this()](const error_code& ec) { self->on_handshake(ec); });
  }

  void on_handshake(const error_code& ec) {
    if (aborted_) return connect_step_ended();
    connecting_ = false;
    if (ec) {
      // Nothing of the request, and so no token, has been written: the handshake came first.
      if (!connection_->verify_failure.empty()) {
        return abort(AttemptError::certificate_rejected,
                     "TLS certificate of " + core_->origin.host + " rejected: " + connection_->verify_failure);
      }
      return abort(AttemptError::tls_failed, "TLS handshake with " + core_->origin.host + " failed: " + ec.message());
    }
    begin_exchange();
  }

  void connect_step_ended() {
    connecting_ = false;
    maybe_finish();
  }

  // --- the exchange ----------------------------------------------------------------------

  void begin_exchange() {
    exchanging_ = true;
    connection_->touch();
    // From here on the deadline is an idle deadline: it moves whenever bytes move.
    arm_deadline(connection_->last_activity() + core_->settings.api.idle_timeout);
    last_progress_ = SteadyClock::now();
    read_response();
    write_more();
    watch_send_queue();
  }

  // While the kernel still holds written bytes, the peer draining them is progress: it keeps
  // the idle deadline away and moves bytes_sent, even when every write has long completed.
  void watch_send_queue() {
    progress_timer_.expires_after(kProgressInterval);
    progress_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (ec || self->finished_ || self->aborted_ || !self->connection_) return;
      const std::uint64_t queued = self->connection_->unacknowledged_bytes();
      if (queued < self->last_unacknowledged_) self->connection_->touch();
      self->last_unacknowledged_ = queued;
      self->report_progress();
      self->watch_send_queue();
    });
  }

  // Request bytes the peer has acknowledged (ciphertext overhead, under 0.2 %, is ignored).
  [[nodiscard]] std::uint64_t delivered_bytes() {
    const std::uint64_t queued = connection_ ? connection_->unacknowledged_bytes() : 0;
    return written_ > queued ? written_ - queued : 0;
  }

  void read_response() {
    parser_.emplace();
    parser_->header_limit(kMaxResponseHeader);
    parser_->body_limit(kMaxResponseBody);
    reading_ = true;
    http::async_read(*connection_, connection_->buffer(), *parser_,
                     [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_response(ec); });
  }

  void on_response(error_code ec) {
    reading_ = false;
    if (aborted_) return maybe_finish();
    // A response delimited by the end of the connection: over TLS the server may skip close_notify.
    if (ec == ssl::error::stream_truncated && parser_->is_header_done() && parser_->need_eof()) {
      ec.clear();
      parser_->put_eof(ec);
    }
    if (!ec) {
      const auto& response = parser_->get();
      const int status = static_cast<int>(response.result_int());
      if (status >= 100 && status < 200 && status != 101) return read_response();  // interim, e.g. 100 Continue
      result_.http_status = status;
      result_.headers.clear();
      for (const auto& field : response) {
        result_.headers.emplace_back(ascii_lower(std::string(field.name_string())), std::string(field.value()));
      }
      result_.body = response.body();
      response_done_ = true;
      keep_alive_ = response.keep_alive();
      if (!body_sent_) {
        result_.answered_early = true;
        // A refusal ends the attempt now; a 2xx counts only once the whole body is out.
        if (status / 100 != 2) return stop_writing();
      }
      return maybe_finish();
    }
    if (is_size_limit(ec)) {
      return abort(AttemptError::response_too_large,
                   "the response exceeds " + format_bytes_limit() + ": " + ec.message());
    }
    if (ec.category() == http::make_error_code(http::error::bad_version).category() && !is_connection_loss(ec)) {
      return abort(AttemptError::malformed_response, "malformed HTTP response: " + ec.message());
    }
    if (write_failed_) {
      return abort(AttemptError::connection_closed, "the connection broke while sending the body (" + write_error_ +
                                                        ") and no answer could be read (" + ec.message() + ")");
    }
    if (body_sent_) {
      return abort(AttemptError::connection_closed,
                   "the connection closed after the whole request was sent, without an answer (" + ec.message() + ")");
    }
    abort(AttemptError::connection_closed, "the connection closed while sending the request (" + ec.message() + ")");
  }

  [[nodiscard]] static std::string format_bytes_limit() {
    return std::to_string(kMaxResponseBody / 1024) + " KiB (body) or " + std::to_string(kMaxResponseHeader / 1024) +
           " KiB (head)";
  }

  void stop_writing() {
    writes_stopped_ = true;
    throttle_.cancel();
    // The connection cannot carry another request after a half-sent body: close it, which also
    // ends a write the server is no longer reading.
    connection_->close();
    maybe_finish();
  }

  FileResult<std::size_t> refill() {
    if (upload_) return upload_->fill(std::span<std::byte>(buffer_.get(), buffer_size_));
    return std::size_t{0};
  }

  void write_more() {
    if (aborted_ || writes_stopped_) {
      writing_ = false;
      return maybe_finish();
    }
    if (buffer_pos_ == buffer_end_) {
      if (written_ == total_) return on_request_sent();
      // A large read on the loop thread: from the page cache it costs less than the TLS records it feeds.
      auto filled = refill();
      if (!filled || *filled == 0) {
        writing_ = false;
        const FileProblem problem =
            filled ? FileProblem{AttemptError::file_changed, "the file ended early"} : filled.error();
        return abort(problem.error, problem.message);
      }
      buffer_pos_ = 0;
      buffer_end_ = *filled;
    }
    std::size_t n = buffer_end_ - buffer_pos_;
    if (!core_->bucket.unlimited()) {
      if (granted_ == 0) {
        const auto grant = core_->bucket.take(n, SteadyClock::now());
        if (grant.bytes == 0) {
          writing_ = true;
          throttled_ = true;
          throttle_.expires_after(grant.wait);
          throttle_.async_wait([self = shared_from_this()](const error_code&) { self->on_throttle_wait(); });
          return;
        }
        granted_ = grant.bytes;
      }
      n = std::min(n, granted_);
    }
    writing_ = true;
    connection_->async_write_some(
        asio::buffer(buffer_.get() + buffer_pos_, n),
        [self = shared_from_this()](const error_code& ec, std::size_t written) { self->on_written(ec, written); });
  }

  void on_throttle_wait() {
    throttled_ = false;
    // Waiting for the shared budget is not the server stalling.
    if (connection_ && !aborted_) connection_->touch();
    write_more();
  }

  void on_written(const error_code& ec, std::size_t n) {
    writing_ = false;
    buffer_pos_ += n;
    written_ += n;
    granted_ -= std::min(granted_, n);
    if (aborted_ || writes_stopped_) return maybe_finish();
    if (ec) {
      // The server may have answered and closed (e.g. 413 before reading the body): the read
      // still pending takes that answer out of the socket before the attempt ends.
      write_failed_ = true;
      write_error_ = ec.message();
      if (!reading_ && !response_done_) {
        return abort(AttemptError::connection_closed, "the connection broke while sending the body: " + write_error_);
      }
      return maybe_finish();
    }
    report_progress();
    write_more();
  }

  void report_progress() {
    if (!progress_) return;
    const auto now = SteadyClock::now();
    if (now - last_progress_ < kProgressInterval) return;
    last_progress_ = now;
    progress_(upload_ ? upload_->file_bytes_within(delivered_bytes()) : 0);
  }

  void on_request_sent() {
    writing_ = false;
    body_sent_ = true;
    result_.body_complete = true;
    if (upload_) {
      // docs/http.md: size and mtime again, after the last byte; a change voids any answer.
      if (auto unchanged = upload_->file().check_unchanged(result_.file_after); !unchanged) {
        file_problem_ = unchanged.error();
      }
      result_.sha256 = upload_->sha256();
    }
    maybe_finish();
  }

  // --- deadlines ---------------------------------------------------------------------------

  void arm_deadline(SteadyClock::time_point at) {
    deadline_.expires_at(at);
    deadline_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->on_deadline();
    });
  }

  void on_deadline() {
    if (finished_ || aborted_) return;
    if (!exchanging_) {
      return abort(AttemptError::connect_timeout,
                   "no connection to " + peer_name() + " within " + seconds_text(core_->settings.api.connect_timeout));
    }
    const auto idle = core_->settings.api.idle_timeout;
    const auto quiet_until = connection_->last_activity() + idle;
    if (throttled_) return arm_deadline(SteadyClock::now() + idle);  // waiting for the budget, not the server
    if (SteadyClock::now() < quiet_until) return arm_deadline(quiet_until);
    std::string what = body_sent_ ? "waiting for the answer" : "sending the request";
    abort(AttemptError::idle_timeout,
          "no bytes moved in either direction for " + seconds_text(idle) + " while " + what);
  }

  // --- the end -----------------------------------------------------------------------------

  void maybe_finish() {
    if (finished_ || connecting_ || reading_ || writing_) return;
    if (!aborted_ && !response_done_) return;  // still waiting for the answer
    // A 2xx came early: the body goes out first (unless the connection broke meanwhile).
    if (!aborted_ && !body_sent_ && !writes_stopped_ && !write_failed_) return;
    finish();
  }

  void finish() {
    finished_ = true;
    deadline_.cancel();
    throttle_.cancel();
    progress_timer_.cancel();
    if (upload_) result_.bytes_sent = upload_->file_bytes_within(written_);
    if (aborted_) {
      result_.error = abort_error_;
      result_.error_message = abort_message_;
    } else if (file_problem_) {
      result_.error = file_problem_->error;
      result_.error_message = file_problem_->message;
    } else if (!body_sent_ && result_.http_status && *result_.http_status / 100 == 2) {
      result_.error = AttemptError::connection_closed;
      result_.error_message =
          "a 2xx arrived before the body was complete, then the connection broke (" + write_error_ + ")";
    }
    // Cancel wins over whatever else was going on: the caller asked for it.
    if (connection_) {
      const bool reusable = !aborted_ && response_done_ && body_sent_ && keep_alive_ && !write_failed_ &&
                            connection_->buffer().size() == 0;
      if (reusable) {
        core_->keep_idle(std::move(connection_));
      } else {
        connection_->close();
        connection_.reset();
      }
    }
    core_->in_flight.erase(this);
    if (job_id_) --core_->uploads_in_flight;
    auto done = std::move(done_);
    done(std::move(result_));
  }

  std::shared_ptr<UploadPool::Core> core_;
  std::optional<std::int64_t> job_id_;
  std::function<void(UploadResult)> done_;
  std::function<void(std::uint64_t)> progress_;
  asio::steady_timer deadline_;
  asio::steady_timer throttle_;
  asio::steady_timer progress_timer_;
  std::uint64_t last_unacknowledged_ = 0;
  tcp::resolver resolver_;
  SteadyClock::time_point started_at_;
  SteadyClock::time_point last_progress_;

  std::unique_ptr<Connection> connection_;
  std::string connect_request_;
  std::optional<http::response_parser<http::empty_body>> proxy_parser_;
  std::optional<http::response_parser<http::string_body>> parser_;

  std::optional<UploadRequestBytes> upload_;
  std::unique_ptr<std::byte[]> buffer_;
  std::size_t buffer_size_ = 0;
  std::size_t buffer_pos_ = 0;
  std::size_t buffer_end_ = 0;
  std::size_t granted_ = 0;  // bytes the bandwidth budget allowed and not yet written
  std::uint64_t written_ = 0;
  std::uint64_t total_ = 0;

  // Which operations are pending: the attempt ends only when none is, so the connection is
  // never destroyed or reused under an operation.
  bool connecting_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool throttled_ = false;  // the pending "write" is a wait for the bandwidth budget

  bool exchanging_ = false;
  bool body_sent_ = false;
  bool response_done_ = false;
  bool keep_alive_ = false;
  bool writes_stopped_ = false;
  bool write_failed_ = false;
  std::string write_error_;
  bool aborted_ = false;
  AttemptError abort_error_ = AttemptError::none;
  std::string abort_message_;
  std::optional<FileProblem> file_problem_;
  bool finished_ = false;
  UploadResult result_;
};

UploadPool::UploadPool(std::shared_ptr<Core> core) : core_(std::move(core)) {}

UploadPool::~UploadPool() {
  cancel_all();
}

Result<std::unique_ptr<UploadPool>> UploadPool::create(asio::io_context& io, PoolSettings settings) {
  auto core = std::make_shared<Core>(io, settings);
  if (auto configured = core->configure(settings); !configured) return configured.error();
  return std::unique_ptr<UploadPool>(new UploadPool(std::move(core)));
}

std::size_t UploadPool::free_sessions() const {
  const auto sessions = static_cast<std::size_t>(std::max(core_->settings.sessions, 0));
  return sessions > core_->uploads_in_flight ? sessions - core_->uploads_in_flight : 0;
}

std::size_t UploadPool::uploads_in_flight() const {
  return core_->uploads_in_flight;
}

std::size_t UploadPool::idle_connections() const {
  return core_->idle.size();
}

void UploadPool::start(UploadRequest request, std::function<void(std::uint64_t)> progress,
                       std::function<void(UploadResult)> done) {
  auto exchange = std::make_shared<Exchange>(core_, request.job_id, std::move(done));
  core_->in_flight.emplace(exchange.get(), exchange);
  ++core_->uploads_in_flight;
  exchange->start_upload(request, std::move(progress));
}

void UploadPool::get(std::string target, std::function<void(UploadResult)> done) {
  auto exchange = std::make_shared<Exchange>(core_, std::nullopt, std::move(done));
  core_->in_flight.emplace(exchange.get(), exchange);
  exchange->start_get(target);
}

bool UploadPool::cancel(std::int64_t job_id) {
  for (const auto& [raw, weak] : core_->in_flight) {
    auto exchange = weak.lock();
    if (exchange && exchange->job_id() == job_id) {
      exchange->abort(AttemptError::cancelled, "cancelled");
      return true;
    }
  }
  return false;
}

void UploadPool::cancel_all() {
  std::vector<std::shared_ptr<Exchange>> exchanges;
  for (const auto& [raw, weak] : core_->in_flight) {
    if (auto exchange = weak.lock()) exchanges.push_back(std::move(exchange));
  }
  for (const auto& exchange : exchanges) exchange->abort(AttemptError::cancelled, "cancelled");
  core_->close_idle();
}

Result<void> UploadPool::apply(PoolSettings settings) {
  return core_->configure(settings);
}

}  // namespace modeldrop::upload
