#pragma once

#include <boost/system/result.hpp>

#include <string>
#include <system_error>

namespace modeldrop {

// An expected failure: one line a user can act on, plus the code behind it when there is one.
struct Error {
  std::string message;
  std::error_code code{};
};

template <class T>
using Result = boost::system::result<T, Error>;

// Found by ADL when Result<T>::value() is called on an error.
[[noreturn]] void throw_exception_from_error(const Error& error, const boost::source_location& loc);

// The exception thrown by Result<T>::value(); caught once, at main.
class ErrorException : public std::runtime_error {
 public:
  explicit ErrorException(const Error& error) : std::runtime_error(error.message), code_(error.code) {}
  [[nodiscard]] std::error_code code() const noexcept { return code_; }

 private:
  std::error_code code_;
};

inline Error make_error(std::string message, std::error_code code = {}) {
  return Error{std::move(message), code};
}

// "what: strerror" for an errno-style failure.
Error errno_error(const std::string& what, int errno_value);

}  // namespace modeldrop
