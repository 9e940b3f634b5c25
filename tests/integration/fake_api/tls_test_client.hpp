#pragma once

// A deliberately low-level HTTPS client for tests of the fake API: it writes exactly the bytes
// it is given (custom multipart bodies, partial bodies, headers only) and reports how the
// connection ended (answer, EOF, RST, silence). Every call is bounded by a timeout.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace modeldrop::test {

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased
  std::string body;
  [[nodiscard]] std::optional<std::string> header(std::string_view lowercase_name) const;
};

// How a read that got no (complete) response ended.
enum class ConnectionEnd { open, eof, reset, timed_out, tls_error };

class TlsTestClient {
 public:
  // Connects to 127.0.0.1:port and completes a TLS handshake that verifies the server's
  // certificate against `ca_file` for `host`. Throws when any of that fails.
  TlsTestClient(std::uint16_t port, const std::filesystem::path& ca_file, std::string host = "localhost",
                std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~TlsTestClient();
  TlsTestClient(const TlsTestClient&) = delete;
  TlsTestClient& operator=(const TlsTestClient&) = delete;

  // Writes all of `bytes`; false when the connection broke first (see end()).
  bool write(std::string_view bytes);
  // One response with a Content-Length body; nullopt when the connection ended first.
  std::optional<HttpResponse> read_response();
  // Reads until the server closes: eof, reset or timed_out (data received is discarded).
  ConnectionEnd wait_for_close();
  // Reads the interim/final status line and headers only (e.g. "100 Continue").
  std::optional<HttpResponse> read_head();

  void set_timeout(std::chrono::milliseconds timeout);
  [[nodiscard]] ConnectionEnd end() const { return end_; }
  [[nodiscard]] int last_errno() const { return last_errno_; }

 private:
  void connect_and_handshake(std::uint16_t port, const std::filesystem::path& ca_file, std::string& host,
                             std::chrono::milliseconds timeout);
  void close();
  bool fill();  // reads more into buffer_; false when the connection ended
  ConnectionEnd classify(int ssl_result);

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buffer_;
  ConnectionEnd end_ = ConnectionEnd::open;
  int last_errno_ = 0;
};

// A multipart/form-data body with one `file` part whose Content-Disposition filename is
// written verbatim (already quoted/escaped by the caller).
std::string multipart_body(std::string_view boundary, std::string_view quoted_filename, std::string_view content,
                           std::string_view part_content_type = "application/octet-stream");

// The head of an upload request for `body_size` bytes (no body).
std::string upload_head(std::string_view boundary, std::uint64_t body_size, std::string_view token,
                        std::string_view extra_headers = "");

std::string sha256_hex(std::string_view bytes);
std::string sha256_of_file(const std::filesystem::path& path);

// Deterministic pseudo-random content (seeded), with "\r\n--" sequences sprinkled in.
std::string test_content(std::size_t size, unsigned seed);

}  // namespace modeldrop::test
