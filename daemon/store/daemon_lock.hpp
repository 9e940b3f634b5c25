#pragma once

// One daemon per database, enforced by the kernel: the daemon holds an exclusive flock on
// "<database>.lock" while it runs. The pid in the `daemon` row can outlive its process and,
// after a reboot, name an unrelated one; a flock ends with its holder, however it dies.

#include "common/error.hpp"

#include <filesystem>
#include <optional>

namespace modeldrop::store {

class DaemonLock {
 public:
  // The lock, or nothing when another process holds it. Creates the lock file (mode 0660,
  // beside the database) when absent.
  static Result<std::optional<DaemonLock>> try_acquire(const std::filesystem::path& database);

  enum class Holder {
    nobody,   // no daemon runs on this database
    daemon,   // a daemon holds the lock now
    unknown,  // the lock file cannot be opened (permissions): ask the pid instead
  };
  // For `modeldrop status`, without taking the lock from a daemon that is starting.
  static Holder holder(const std::filesystem::path& database);

  static std::filesystem::path file_for(const std::filesystem::path& database);

  DaemonLock(DaemonLock&& other) noexcept;
  DaemonLock& operator=(DaemonLock&& other) noexcept;
  DaemonLock(const DaemonLock&) = delete;
  DaemonLock& operator=(const DaemonLock&) = delete;
  ~DaemonLock();

 private:
  explicit DaemonLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace modeldrop::store
