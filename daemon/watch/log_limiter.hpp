#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <unordered_map>

namespace modeldrop::watch {

// Keeps a warning that repeats (a directory still missing, inotify overflowing again) from
// flooding the log: one line per key and interval, with a count of what was held back.
class LogLimiter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit LogLimiter(std::chrono::steady_clock::duration interval) : interval_(interval) {}

  // nullopt: suppress this one. Otherwise log it, mentioning the returned number of
  // identical messages suppressed since the last one let through.
  std::optional<std::size_t> admit(const std::string& key, TimePoint now);

  // Lets the next message with this key through (the condition ended; a new one is news).
  void reset(const std::string& key) { entries_.erase(key); }

 private:
  struct Entry {
    TimePoint last;
    std::size_t suppressed = 0;
  };
  std::chrono::steady_clock::duration interval_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace modeldrop::watch
