#include "upload/attempt.hpp"

namespace modeldrop::upload {

std::string_view to_string(AttemptError error) {
  switch (error) {
    case AttemptError::none:
      return "none";
    case AttemptError::connect_failed:
      return "connect_failed";
    case AttemptError::connect_timeout:
      return "connect_timeout";
    case AttemptError::tls_failed:
      return "tls_failed";
    case AttemptError::certificate_rejected:
      return "certificate_rejected";
    case AttemptError::proxy_failed:
      return "proxy_failed";
    case AttemptError::connection_closed:
      return "connection_closed";
    case AttemptError::idle_timeout:
      return "idle_timeout";
    case AttemptError::malformed_response:
      return "malformed_response";
    case AttemptError::response_too_large:
      return "response_too_large";
    case AttemptError::cancelled:
      return "cancelled";
    case AttemptError::file_missing:
      return "file_missing";
    case AttemptError::file_replaced:
      return "file_replaced";
    case AttemptError::file_not_regular:
      return "file_not_regular";
    case AttemptError::file_unreadable:
      return "file_unreadable";
    case AttemptError::file_changed:
      return "file_changed";
    case AttemptError::invalid_request:
      return "invalid_request";
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
