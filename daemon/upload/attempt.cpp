#include "upload/attempt.hpp"

namespace modeldrop::upload {

std::string_view to_string(AttemptError error) {
  switch (error) {
    case AttemptError::none:
      return "none";
    case AttemptError::connect_failed:
      return "connect failed";
    case AttemptError::connect_timeout:
      return "connect timeout";
    case AttemptError::tls_failed:
      return "TLS failed";
    case AttemptError::certificate_rejected:
      return "certificate rejected";
    case AttemptError::proxy_failed:
      return "proxy failed";
    case AttemptError::connection_closed:
      return "connection closed";
    case AttemptError::idle_timeout:
      return "idle timeout";
    case AttemptError::malformed_response:
      return "malformed response";
    case AttemptError::response_too_large:
      return "response too large";
    case AttemptError::cancelled:
      return "cancelled";
    case AttemptError::file_missing:
      return "file missing";
    case AttemptError::file_replaced:
      return "file replaced";
    case AttemptError::file_not_regular:
      return "not a regular file";
    case AttemptError::file_unreadable:
      return "file unreadable";
    case AttemptError::file_changed:
      return "file changed";
  }
  return "unknown";
}

const std::string* UploadResult::header(std::string_view lowercase_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lowercase_name) return &value;
  }
  return nullptr;
}

}  // namespace modeldrop::upload
