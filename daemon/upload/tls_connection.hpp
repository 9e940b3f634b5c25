#pragma once

// Internal to the upload component (includes Asio and OpenSSL): one connection to the API and
// the TLS context every connection is made from.

#include "common/error.hpp"
#include "config/config.hpp"

#include <openssl/ssl.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace modeldrop::upload {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

// One context for every connection: the system trust store plus api.ca_file, TLS 1.2 or later,
// the peer always verified.
Result<std::shared_ptr<ssl::context>> make_tls_context(const config::ApiConfig& api);

// The error an OpenSSL call's SSL_get_error value stands for; a close without close_notify is
// ssl::error::stream_truncated.
error_code ssl_error_code(int ssl_error);

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
  error_code prepare_tls(const std::string& host);

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
  [[nodiscard]] std::uint64_t unacknowledged_bytes();
  [[nodiscard]] SteadyClock::time_point last_activity() const { return last_activity_; }

  // Every pending operation then completes at once with an error; OpenSSL is not called again
  // (the descriptor number may be reused by another socket).
  void close();

  // While it sat idle the server closed it, or sent something nobody asked for: not reusable.
  bool looks_closed();

  std::string verify_failure;  // why the certificate was refused, set during the handshake

 private:
  static int verify(int preverified, X509_STORE_CTX* store);

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
}  // namespace modeldrop::upload
