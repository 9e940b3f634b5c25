#include "tls_test_client.hpp"

#include "common/text.hpp"
#include "support/temp_dir.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <random>
#include <stdexcept>

namespace modeldrop::test {
namespace {

// A peer's RST must fail a write with EPIPE, not kill the test binary.
const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  char text[256] = "no OpenSSL error";
  if (code != 0) ERR_error_string_n(code, text, sizeof text);
  return text;
}

}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view lowercase_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lowercase_name) return value;
  }
  return std::nullopt;
}

TlsTestClient::TlsTestClient(std::uint16_t port, const std::filesystem::path& ca_file, std::string host,
                             std::chrono::milliseconds timeout) {
  try {
    connect_and_handshake(port, ca_file, host, timeout);
  } catch (...) {
    close();  // the destructor does not run when a constructor throws
    throw;
  }
}

void TlsTestClient::connect_and_handshake(std::uint16_t port, const std::filesystem::path& ca_file, std::string& host,
                                          std::chrono::milliseconds timeout) {
  (void)kSigpipeIgnored;
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket failed");
  set_timeout(timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    throw std::runtime_error(std::string("connect failed: ") + std::strerror(errno));
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) throw std::runtime_error("SSL_CTX_new: " + openssl_error());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  if (SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr) != 1) {
    throw std::runtime_error("cannot load CA " + ca_file.string() + ": " + openssl_error());
  }
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_);
  // SSL_set_tlsext_host_name without its C cast.
  SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, host.data());
  SSL_set1_host(ssl_, host.c_str());
  if (SSL_connect(ssl_) != 1) {
    const long verify = SSL_get_verify_result(ssl_);
    throw std::runtime_error("TLS handshake failed: " + openssl_error() +
                             " (verify: " + X509_verify_cert_error_string(verify) + ")");
  }
}

TlsTestClient::~TlsTestClient() {
  close();
}

void TlsTestClient::close() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
  ssl_ = nullptr;
  ctx_ = nullptr;
  fd_ = -1;
}

void TlsTestClient::set_timeout(std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

ConnectionEnd TlsTestClient::classify(int ssl_result) {
  const int error = SSL_get_error(ssl_, ssl_result);
  last_errno_ = errno;
  if (error == SSL_ERROR_ZERO_RETURN) return ConnectionEnd::eof;
  if (error == SSL_ERROR_SYSCALL || error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
    if (last_errno_ == ECONNRESET || last_errno_ == EPIPE) return ConnectionEnd::reset;
    if (last_errno_ == EAGAIN) return ConnectionEnd::timed_out;
    return ConnectionEnd::eof;  // a TCP FIN without close_notify
  }
  if (error == SSL_ERROR_SSL) {
    // OpenSSL 3 reports a FIN without close_notify as "unexpected eof while reading".
    const unsigned long code = ERR_peek_error();
    if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
      ERR_clear_error();
      return ConnectionEnd::eof;
    }
    if (last_errno_ == ECONNRESET || last_errno_ == EPIPE) return ConnectionEnd::reset;
  }
  ERR_clear_error();
  return ConnectionEnd::tls_error;
}

bool TlsTestClient::write(std::string_view bytes) {
  while (!bytes.empty()) {
    errno = 0;
    const int chunk = static_cast<int>(std::min<std::size_t>(bytes.size(), 1 << 20));
    const int n = SSL_write(ssl_, bytes.data(), chunk);
    if (n <= 0) {
      end_ = classify(n);
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool TlsTestClient::fill() {
  char chunk[65536];
  errno = 0;
  const int n = SSL_read(ssl_, chunk, sizeof chunk);
  if (n <= 0) {
    end_ = classify(n);
    return false;
  }
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return true;
}

std::optional<HttpResponse> TlsTestClient::read_head() {
  std::size_t end = 0;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return std::nullopt;
  }
  HttpResponse response;
  std::string_view head(buffer_.data(), end);
  const auto first_eol = head.find("\r\n");
  const std::string_view status_line = head.substr(0, first_eol);
  if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.1 ")) throw std::runtime_error("bad status line");
  response.status = std::stoi(std::string(status_line.substr(9, 3)));
  head.remove_prefix(first_eol == std::string_view::npos ? head.size() : first_eol + 2);
  while (!head.empty()) {
    const auto eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos) {
      response.headers.emplace_back(ascii_lower(line.substr(0, colon)), std::string(trim(line.substr(colon + 1))));
    }
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
  }
  buffer_.erase(0, end + 4);
  return response;
}

std::optional<HttpResponse> TlsTestClient::read_response() {
  auto response = read_head();
  while (response && response->status == 100) response = read_head();
  if (!response) return std::nullopt;
  const auto length = response->header("content-length");
  const std::size_t size = length ? std::stoull(*length) : 0;
  while (buffer_.size() < size) {
    if (!fill()) return std::nullopt;
  }
  response->body = buffer_.substr(0, size);
  buffer_.erase(0, size);
  return response;
}

ConnectionEnd TlsTestClient::wait_for_close() {
  for (int reads = 0; reads < 1'000'000; ++reads) {
    if (!fill()) return end_;
    buffer_.clear();
  }
  return ConnectionEnd::open;
}

std::string multipart_body(std::string_view boundary, std::string_view quoted_filename, std::string_view content,
                           std::string_view part_content_type) {
  std::string body;
  body.append("--").append(boundary).append("\r\n");
  body.append("Content-Disposition: form-data; name=\"file\"; filename=").append(quoted_filename).append("\r\n");
  body.append("Content-Type: ").append(part_content_type).append("\r\n\r\n");
  body.append(content);
  body.append("\r\n--").append(boundary).append("--\r\n");
  return body;
}

std::string upload_head(std::string_view boundary, std::uint64_t body_size, std::string_view token,
                        std::string_view extra_headers) {
  std::string head = "POST /v0/models/upload HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tls-test-client\r\n";
  if (!token.empty()) head.append("Authorization: Bearer ").append(token).append("\r\n");
  head.append("Content-Type: multipart/form-data; boundary=").append(boundary).append("\r\n");
  head.append("Content-Length: ").append(std::to_string(body_size)).append("\r\n");
  head.append(extra_headers);
  head.append("\r\n");
  return head;
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xF]);
  }
  return hex;
}

std::string sha256_of_file(const std::filesystem::path& path) {
  return sha256_hex(read_file(path));
}

std::string test_content(std::size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::string content(size, '\0');
  for (auto& c : content) c = static_cast<char>(random() & 0xFF);
  // Delimiter look-alikes: a multipart parser that matches prefixes would cut here.
  for (std::size_t at = 1000; at + 8 < size; at += 70'001) content.replace(at, 6, "\r\n--\r\n");
  return content;
}

}  // namespace modeldrop::test
