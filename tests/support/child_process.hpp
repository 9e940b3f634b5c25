#pragma once

// A real program started in the background (the daemon, the fake API executable), with its
// stderr and stdout going to files the test can read while it runs. Killed on destruction.

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace modeldrop::test {

class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, const std::filesystem::path& log_dir,
               std::map<std::string, std::string> env_set = {}, std::vector<std::string> env_unset = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  [[nodiscard]] int pid() const { return pid_; }
  void signal(int sig) const;
  // The exit code once it exits within `timeout` (-1 when killed by a signal); nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  [[nodiscard]] bool running();
  [[nodiscard]] std::string stderr_text() const;
  [[nodiscard]] std::string stdout_text() const;
  [[nodiscard]] std::optional<int> terminating_signal() const { return term_signal_; }

 private:
  int pid_ = -1;
  std::filesystem::path out_file_;
  std::filesystem::path err_file_;
  std::optional<int> exit_code_;
  std::optional<int> term_signal_;
};

// True when no process `pid` exists, or only its zombie is left for init to reap.
bool process_gone(int pid);

// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
template <class Condition>
bool wait_until(Condition condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    struct timespec ts {
      0, 20'000'000
    };
    ::nanosleep(&ts, nullptr);
  }
}

}  // namespace modeldrop::test
