#include "store/daemon_lock.hpp"

#include "store/database_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <cerrno>
#include <utility>

namespace modeldrop::store {

std::filesystem::path DaemonLock::file_for(const std::filesystem::path& database) {
  return std::filesystem::path(database.string() + ".lock");
}

Result<std::optional<DaemonLock>> DaemonLock::try_acquire(const std::filesystem::path& database) {
  const auto file = file_for(database);
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kDatabaseFileMode);
  if (fd < 0) return errno_error("daemon lock " + file.string(), errno);
  DaemonLock lock(fd);
  // `modeldrop status` takes a shared lock for an instant (holder()); a few short retries
  // tell that apart from a daemon, which holds the lock for good.
  for (int attempt = 0; attempt < 20; ++attempt) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return std::optional<DaemonLock>(std::move(lock));
    if (errno != EWOULDBLOCK) return errno_error("daemon lock " + file.string(), errno);
    ::usleep(5000);
  }
  return std::optional<DaemonLock>{};
}

DaemonLock::Holder DaemonLock::holder(const std::filesystem::path& database) {
  const int fd = ::open(file_for(database).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? Holder::nobody : Holder::unknown;
  // A shared lock is granted unless a daemon holds the exclusive one; closing releases it.
  const int result = ::flock(fd, LOCK_SH | LOCK_NB);
  const int error = errno;
  ::close(fd);
  if (result == 0) return Holder::nobody;
  return error == EWOULDBLOCK ? Holder::daemon : Holder::unknown;
}

DaemonLock::DaemonLock(DaemonLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

DaemonLock& DaemonLock::operator=(DaemonLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

DaemonLock::~DaemonLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace modeldrop::store
