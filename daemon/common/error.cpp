#include "common/error.hpp"

#include <cstring>

namespace modeldrop {

void throw_exception_from_error(const Error& error, const boost::source_location& /*loc*/) {
  throw ErrorException(error);
}

Error errno_error(const std::string& what, int errno_value) {
  return Error{what + ": " + std::strerror(errno_value), std::error_code(errno_value, std::generic_category())};
}

}  // namespace modeldrop
