#include "app/systemd_notifier.hpp"

#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <ctime>

namespace modeldrop::app {

SystemdNotifier::SystemdNotifier() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  std::uint64_t usec = 0;
  // sd_watchdog_enabled checks WATCHDOG_PID against our pid, so a child never inherits it.
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdog_interval_ = std::chrono::microseconds(static_cast<std::int64_t>(usec / 2));
  }
}

void SystemdNotifier::notify(const std::string& message) {
  if (enabled_) sd_notify(0, message.c_str());
}

void SystemdNotifier::ready() {
  notify("READY=1");
}

void SystemdNotifier::reloading() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const auto usec = static_cast<long long>(ts.tv_sec) * 1000000LL + ts.tv_nsec / 1000;
  notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void SystemdNotifier::stopping() {
  notify("STOPPING=1");
}

void SystemdNotifier::status(std::string_view line) {
  if (line == last_status_) return;
  last_status_ = std::string(line);
  notify("STATUS=" + last_status_);
}

void SystemdNotifier::watchdog() {
  notify("WATCHDOG=1");
}

}  // namespace modeldrop::app
