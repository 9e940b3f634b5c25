#include "watch/log_limiter.hpp"

namespace modeldrop::watch {

std::optional<std::size_t> LogLimiter::admit(const std::string& key, TimePoint now) {
  auto [it, inserted] = entries_.try_emplace(key, Entry{now, 0});
  if (inserted) return 0;
  Entry& entry = it->second;
  if (now - entry.last < interval_) {
    ++entry.suppressed;
    return std::nullopt;
  }
  const std::size_t suppressed = entry.suppressed;
  entry = Entry{now, 0};
  return suppressed;
}

}  // namespace modeldrop::watch
