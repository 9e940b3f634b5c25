#pragma once

// The daemon's side of systemd's notify protocol (Type=notify). Without $NOTIFY_SOCKET
// (run by hand, in tests) every call is a cheap no-op.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace modeldrop::app {

class SystemdNotifier {
 public:
  SystemdNotifier();

  void ready();
  void reloading();  // RELOADING=1 (with MONOTONIC_USEC), then ready() when the reload is done
  void stopping();
  void status(std::string_view line);  // one line for `systemctl status`
  void watchdog();

  // Half of $WATCHDOG_USEC when the watchdog is enabled for this process: how often
  // watchdog() must be called from the event loop.
  [[nodiscard]] std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_interval_; }
  [[nodiscard]] bool enabled() const { return enabled_; }

 private:
  void notify(const std::string& message);

  bool enabled_ = false;
  std::optional<std::chrono::microseconds> watchdog_interval_;
  std::string last_status_;
};

}  // namespace modeldrop::app
