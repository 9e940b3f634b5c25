#pragma once

// A mount for one test (tests run as root), detached when the test ends, before its directory goes.

#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

namespace modeldrop::test {

class ScopedMount {
 public:
  // A tmpfs of `size` (e.g. "256k"), read-only when asked.
  static ScopedMount tmpfs(const std::filesystem::path& at, const std::string& size, bool read_only = false) {
    std::filesystem::create_directories(at);
    const std::string options = "size=" + size + ",mode=0755";
    if (::mount("tmpfs", at.c_str(), "tmpfs", read_only ? static_cast<unsigned long>(MS_RDONLY) : 0UL,
                options.c_str()) != 0) {
      throw std::runtime_error("cannot mount a tmpfs at " + at.string() + ": " + std::strerror(errno));
    }
    return ScopedMount(at);
  }
  // `dir` mounted onto itself, read-only: writes fail with EROFS even for root.
  static ScopedMount read_only_bind(const std::filesystem::path& dir) {
    if (::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      throw std::runtime_error("cannot bind-mount " + dir.string() + ": " + std::strerror(errno));
    }
    ScopedMount mounted(dir);
    if (::mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
      throw std::runtime_error("cannot make " + dir.string() + " read-only: " + std::strerror(errno));
    }
    return mounted;
  }
  ScopedMount(ScopedMount&& other) noexcept : at_(std::exchange(other.at_, {})) {}
  ScopedMount& operator=(ScopedMount&&) = delete;
  ~ScopedMount() {
    if (!at_.empty()) ::umount2(at_.c_str(), MNT_DETACH);
  }

 private:
  explicit ScopedMount(std::filesystem::path at) : at_(std::move(at)) {}
  std::filesystem::path at_;
};

}  // namespace modeldrop::test
