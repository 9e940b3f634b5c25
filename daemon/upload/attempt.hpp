#pragma once

// What goes into one upload attempt and what comes out: the interface between the transport
// and the retry policy / daemon. Free of Asio and Beast so that its users compile fast.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modeldrop::upload {

// Which file a job means (docs/http.md): device and inode say which file, size and mtime
// whether it changed.
struct FileIdentity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;

  friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

// Reads the next bytes of the file into `into`: how many (0 at the end), or none when the read
// failed (the reader records why).
using ReadNext = std::function<std::optional<std::size_t>(std::span<std::byte> into)>;
// A check of the file's content over the upload's own reads, on the reader's thread: returns the
// job's last_error when it refuses the file (e.g. "archive check: truncated gzip stream").
using ContentCheck = std::function<std::optional<std::string>(const ReadNext& read_next)>;

struct UploadRequest {
  std::int64_t job_id = 0;
  std::filesystem::path path;             // opened with O_NOFOLLOW; device+inode must equal `expected`
  std::string filename;                   // the multipart filename (the basename of the original path)
  std::optional<std::string> project_id;  // sent as ?ai_project_id= when set
  FileIdentity expected;                  // size and mtime must match too, before and after sending
  bool compute_sha256 = true;
  // Runs beside the send; the body's final bytes wait for its verdict. Empty: no check.
  ContentCheck check;
  // On the caller's thread once the file was read whole: its SHA-256 (when computed) before
  // the final bytes go out, so other jobs can compare with it while this one is in flight.
  std::function<void(const std::string& sha256)> hashed;
  std::optional<std::string> token;  // instead of the pool's token; a secret
};

enum class AttemptError {
  none,
  connect_failed,        // resolve or TCP connect failed
  connect_timeout,       // connect + proxy + TLS handshake took longer than api.connect_timeout
  tls_failed,            // TLS handshake failed for another reason than the certificate
  certificate_rejected,  // peer verification or host name check failed; nothing was sent
  proxy_failed,          // the CONNECT proxy refused or failed
  connection_closed,     // reset, EOF or a write error before a usable answer arrived
  idle_timeout,          // no byte moved in either direction for api.idle_timeout
  malformed_response,    // not parseable as HTTP
  response_too_large,    // response headers or body over the bound
  cancelled,             // cancel() / cancel_all()
  file_missing,          // the path no longer exists
  file_replaced,         // another inode (or a symlink) at the path
  file_not_regular,      // not a regular file
  file_unreadable,       // open or read failed (permissions, I/O error)
  file_changed,          // size or mtime differ from `expected`, before or after sending
  content_refused,       // the content check refused the file; its final bytes were never sent
  invalid_request,       // the request cannot be sent as asked (a token with control characters)
};

std::string_view to_string(AttemptError error);

// The outcome of one attempt. The server's answer counts only when `error == none`; every
// other combination (e.g. a 200 with `file_changed`, or a 2xx that arrived early followed by a
// failed write) is not a success whatever `http_status` says.
struct UploadResult {
  std::optional<int> http_status;                            // set when a response was read (even after a failed write)
  std::vector<std::pair<std::string, std::string>> headers;  // response headers, names lowercased
  std::string body;                                          // response body, at most kMaxResponseBody
  AttemptError error = AttemptError::none;
  std::string error_message;          // one clear line, never containing the token
  std::uint64_t bytes_sent = 0;       // file bytes sent
  bool body_complete = false;         // the whole request body went out
  bool answered_early = false;        // the response arrived before the body was complete
  std::optional<std::string> sha256;  // lowercase hex, when computed over the whole file
  FileIdentity file_after;            // stat after sending (size/mtime check of docs/http.md)
  bool reused_connection = false;     // the request went over a kept-alive connection

  // The first header with this (lowercase) name.
  [[nodiscard]] const std::string* header(std::string_view lowercase_name) const;
  // A 2xx to a request sent whole, from an unchanged file: the only case docs/http.md may accept.
  [[nodiscard]] bool accepted_2xx() const {
    return error == AttemptError::none && http_status && *http_status >= 200 && *http_status < 300 && body_complete;
  }
};

inline constexpr std::size_t kMaxResponseBody = 1U << 20U;

}  // namespace modeldrop::upload
