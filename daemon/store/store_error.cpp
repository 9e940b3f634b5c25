#include "store/store_error.hpp"

#include <string>

namespace modeldrop::store {

namespace {

class StoreCategory final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "modeldrop store"; }
  [[nodiscard]] std::string message(int code) const override {
    switch (static_cast<StoreErrc>(code)) {
      case StoreErrc::no_database:
        return "no database";
      case StoreErrc::not_a_modeldrop_database:
        return "not a modeldrop database";
      case StoreErrc::schema_too_new:
        return "database schema newer than this binary";
      case StoreErrc::unknown_job:
        return "unknown job";
      case StoreErrc::illegal_transition:
        return "illegal job state transition";
      case StoreErrc::invalid_request:
        return "invalid request";
      case StoreErrc::daemon_already_running:
        return "another daemon is running";
      case StoreErrc::daemon_not_registered:
        return "daemon not registered";
    }
    return "store error " + std::to_string(code);
  }
};

}  // namespace

const std::error_category& store_category() noexcept {
  static const StoreCategory category;
  return category;
}

std::error_code make_error_code(StoreErrc errc) noexcept {
  return {static_cast<int>(errc), store_category()};
}

}  // namespace modeldrop::store
