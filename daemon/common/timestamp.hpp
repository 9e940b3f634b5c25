#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace modeldrop {

using WallClock = std::chrono::system_clock;
using WallTime = WallClock::time_point;

// docs/database.md: UTC "YYYY-MM-DDTHH:MM:SS.sssZ". Sorting the text sorts the times.
std::string format_timestamp(WallTime t);
std::optional<WallTime> parse_timestamp(std::string_view text);

// The source of "now" for everything that schedules (settle, backoff, holds), so tests
// can move time without sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual WallTime now() const = 0;
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] WallTime now() const override { return WallClock::now(); }
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(WallTime start) : now_(start) {}
  [[nodiscard]] WallTime now() const override { return now_; }
  void advance(std::chrono::milliseconds d) { now_ += d; }
  void set(WallTime t) { now_ = t; }

 private:
  WallTime now_;
};

}  // namespace modeldrop
