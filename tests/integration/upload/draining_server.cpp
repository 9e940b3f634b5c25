#include "integration/upload/draining_server.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdexcept>
#include <vector>

namespace modeldrop::test {
namespace {

SSL_CTX* as_context(void* p) {
  return static_cast<SSL_CTX*>(p);
}

// The value of Content-Length in a request head, or 0.
std::uint64_t content_length(const std::string& head) {
  std::string lower;
  for (const char c : head) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  const auto at = lower.find("\r\ncontent-length:");
  if (at == std::string::npos) return 0;
  return std::stoull(head.substr(at + 17));
}

}  // namespace

DrainingServer::DrainingServer(const std::filesystem::path& cert, const std::filesystem::path& key) {
  SSL_CTX* context = SSL_CTX_new(TLS_server_method());
  context_ = context;
  if (SSL_CTX_use_certificate_chain_file(context, cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(context, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw std::runtime_error("draining server: cannot load the certificate");
  }
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(listener_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener_, 8) != 0 || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error("draining server: cannot listen");
  }
  port_ = ntohs(address.sin_port);
  thread_ = std::thread([this] { serve(); });
}

DrainingServer::~DrainingServer() {
  stopping_ = true;
  ::shutdown(listener_, SHUT_RDWR);  // wakes the poll below
  thread_.join();
  ::close(listener_);
  SSL_CTX_free(as_context(context_));
}

void DrainingServer::serve() {
  std::vector<char> buffer(256 * 1024);
  while (!stopping_) {
    pollfd listening{listener_, POLLIN, 0};
    if (::poll(&listening, 1, 100) <= 0 || stopping_) continue;
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    SSL* ssl = SSL_new(as_context(context_));
    SSL_set_fd(ssl, client);
    // One request per connection, answered with Connection: close.
    if (SSL_accept(ssl) == 1) {
      std::string head;
      char c = 0;
      while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536 && SSL_read(ssl, &c, 1) == 1) head += c;
      std::uint64_t remaining = content_length(head);
      while (remaining > 0) {
        const int n = SSL_read(ssl, buffer.data(), static_cast<int>(std::min<std::uint64_t>(buffer.size(), remaining)));
        if (n <= 0) break;
        remaining -= static_cast<std::uint64_t>(n);
        drained_ += static_cast<std::uint64_t>(n);
      }
      if (remaining == 0) {
        const std::string body = R"({"id":"file-drained","object":"file"})";
        const std::string answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\nConnection: close\r\n\r\n" + body;
        if (SSL_write(ssl, answer.data(), static_cast<int>(answer.size())) > 0) ++answered_;
        SSL_shutdown(ssl);
      }
    }
    SSL_free(ssl);
    ::close(client);
  }
}

}  // namespace modeldrop::test
