#include "upload/tls_connection.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <cerrno>

namespace modeldrop::upload {
namespace {

std::string openssl_error_text() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
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

}  // namespace

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
error_code Connection::prepare_tls(const std::string& host) {
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

std::uint64_t Connection::unacknowledged_bytes() {
  int queued = 0;
  if (!socket().is_open() || ::ioctl(socket().native_handle(), TIOCOUTQ, &queued) != 0 || queued < 0) return 0;
  return static_cast<std::uint64_t>(queued);
}

void Connection::close() {
  error_code ignored;
  socket_.close(ignored);
}

bool Connection::looks_closed() {
  if (!socket_.is_open() || (ssl_ != nullptr && SSL_pending(ssl_) > 0)) return true;
  char byte = 0;
  const ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return !(n < 0 && errno == EAGAIN);  // EWOULDBLOCK is EAGAIN on Linux
}

int Connection::verify(int preverified, X509_STORE_CTX* store) {
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
}  // namespace modeldrop::upload
