#pragma once

// Child processes for the crash and lock tests: a pipe to hear from the child, bounded waits.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>

namespace modeldrop::store::test_support {

// A pipe from a forked child to the test.
class ChildPipe {
 public:
  ChildPipe() {
    if (::pipe(fds_) != 0) throw std::runtime_error("pipe failed");
  }
  ~ChildPipe() {
    close_read();
    close_write();
  }
  ChildPipe(const ChildPipe&) = delete;
  ChildPipe& operator=(const ChildPipe&) = delete;

  // In the child.
  void send(std::int64_t value) {
    const char* data = reinterpret_cast<const char*>(&value);
    std::size_t left = sizeof value;
    while (left > 0) {
      const ssize_t n = ::write(fds_[1], data, left);
      if (n <= 0) ::_exit(3);
      data += n;
      left -= static_cast<std::size_t>(n);
    }
  }

  // In the parent: the next value, or none at end of stream or after `timeout`.
  std::optional<std::int64_t> receive(std::chrono::milliseconds timeout) {
    std::int64_t value = 0;
    char* data = reinterpret_cast<char*>(&value);
    std::size_t got = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (got < sizeof value) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd fd{fds_[0], POLLIN, 0};
      if (::poll(&fd, 1, static_cast<int>(left.count())) <= 0) continue;
      const ssize_t n = ::read(fds_[0], data + got, sizeof value - got);
      if (n <= 0) return std::nullopt;
      got += static_cast<std::size_t>(n);
    }
    return value;
  }

  void close_read() {
    if (fds_[0] >= 0) ::close(fds_[0]);
    fds_[0] = -1;
  }
  void close_write() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }

 private:
  int fds_[2] = {-1, -1};
};

// Waits for a child to end (bounded); kills it when it does not.
inline int wait_for_child(pid_t child, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child) return status;
    ::usleep(10'000);
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, &status, 0);
  return status;
}

}  // namespace modeldrop::store::test_support
