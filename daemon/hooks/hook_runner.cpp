#include "hooks/hook_runner.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>

extern char** environ;

namespace modeldrop::hooks {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Between looks at the children's exit and deadlines; also the timeout's precision.
constexpr int kLookIntervalMs = 50;
// Read per child per look, so one flooding hook cannot starve the others' deadlines.
constexpr std::size_t kReadPerLook = 256 * 1024;

// A hook's output, logged a line at a time with the job id, up to a bound; the rest is counted.
class OutputLog {
 public:
  OutputLog(std::int64_t job_id, std::string name, const HookRunnerLimits& limits)
      : job_id_(job_id), name_(std::move(name)), limits_(limits) {}

  void feed(std::string_view bytes) {
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      if (logged_ >= limits_.max_logged_bytes) {
        dropped_ += bytes.size() - i;
        partial_.clear();
        return;
      }
      if (bytes[i] == '\n') {
        emit();
      } else {
        partial_ += bytes[i];
        if (partial_.size() >= limits_.max_line_bytes) emit();
      }
    }
  }

  void finish() {
    if (!partial_.empty()) emit();
    if (dropped_ > 0) {
      spdlog::warn("job {}: {} hook: {} more bytes of output not logged", job_id_, name_, dropped_);
      dropped_ = 0;
    }
  }

 private:
  void emit() {
    logged_ += partial_.size() + 1;
    spdlog::info("job {}: {} hook: {}", job_id_, name_, partial_);
    partial_.clear();
  }

  std::int64_t job_id_;
  std::string name_;
  const HookRunnerLimits& limits_;
  std::string partial_;
  std::size_t logged_ = 0;
  std::size_t dropped_ = 0;
};

std::vector<std::string> environment_for(const HookRun& run) {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const auto overridden = [&](const auto& pair) {
      return text.size() > pair.first.size() && text.starts_with(pair.first) && text[pair.first.size()] == '=';
    };
    if (std::none_of(run.environment.begin(), run.environment.end(), overridden)) env.emplace_back(text);
  }
  for (const auto& [name, value] : run.environment) env.push_back(name + "=" + value);
  return env;
}

std::vector<char*> pointers_to(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (auto& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Spawns `run` in a process group of its own with stdin from /dev/null and stdout and stderr
// into one pipe; returns the pid and the pipe's read end, or why it could not start.
struct Spawned {
  pid_t pid = -1;
  int output_fd = -1;
  std::string error;
};

Spawned spawn(const HookRun& run) {
  std::array<int, 2> pipe_fds{};
  if (::pipe2(pipe_fds.data(), O_CLOEXEC) != 0) return {-1, -1, std::strerror(errno)};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  // The daemon blocks or ignores some signals; a hook starts with the defaults.
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (const int signal : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&defaults, signal);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  std::vector<std::string> argv = run.argv;
  std::vector<std::string> env = environment_for(run);
  auto argv_pointers = pointers_to(argv);
  auto env_pointers = pointers_to(env);
  pid_t pid = -1;
  const int rc =
      ::posix_spawnp(&pid, argv_pointers[0], &actions, &attributes, argv_pointers.data(), env_pointers.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    return {-1, -1, std::strerror(rc)};
  }
  ::fcntl(pipe_fds[0], F_SETFL, ::fcntl(pipe_fds[0], F_GETFL) | O_NONBLOCK);
  return {pid, pipe_fds[0], {}};
}

HookResult result_of(std::int64_t job_id, int status) {
  HookResult result{job_id, HookEnd::exited, 0, 0, {}};
  if (WIFSIGNALED(status)) {
    result.end = HookEnd::signalled;
    result.signal = WTERMSIG(status);
  } else {
    result.exit_code = WEXITSTATUS(status);
  }
  return result;
}

}  // namespace

struct HookRunner::Child {
  HookRun run;
  pid_t pid = -1;
  int output_fd = -1;  // -1 once at its end
  SteadyClock::time_point deadline;
  std::unique_ptr<OutputLog> log;

  void read_output() {
    std::array<char, 16 * 1024> buffer{};
    for (std::size_t read_now = 0; output_fd >= 0 && read_now < kReadPerLook;) {
      const ssize_t n = ::read(output_fd, buffer.data(), buffer.size());
      if (n > 0) {
        log->feed(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
        read_now += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && errno == EAGAIN) {
        return;
      } else {
        close_output();
      }
    }
  }

  void close_output() {
    if (output_fd >= 0) ::close(output_fd);
    output_fd = -1;
  }

  // The result once the hook has ended (or was killed at its deadline); nullopt while it runs.
  std::optional<HookResult> reap(SteadyClock::time_point now) {
    int status = 0;
    const pid_t reaped = ::waitpid(pid, &status, WNOHANG);
    std::optional<HookResult> result;
    if (reaped == pid) {
      result = result_of(run.job_id, status);
    } else if (now >= deadline) {
      ::kill(-pid, SIGKILL);  // the whole group: whatever the hook started goes too
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      result = HookResult{run.job_id, HookEnd::timed_out, 0, SIGKILL, {}};
    } else {
      return std::nullopt;
    }
    // What the hook wrote before it ended; a descendant still holding the pipe is not waited for.
    read_output();
    close_output();
    log->finish();
    return result;
  }
};

HookRunner::HookRunner(Finished finished, HookRunnerLimits limits)
    : finished_(std::move(finished)), limits_(limits), wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  thread_ = std::thread([this] { run_loop(); });
}

HookRunner::~HookRunner() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void HookRunner::submit(HookRun run) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    queue_.push_back(std::move(run));
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(wake_fd_, &one, sizeof(one));
}

void HookRunner::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

void HookRunner::start_queued(std::vector<Child>& running) {
  while (running.size() < limits_.max_running) {
    HookRun run;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) return;
      run = std::move(queue_.front());
      queue_.pop_front();
    }
    const Spawned spawned = run.argv.empty() ? Spawned{-1, -1, "no program"} : spawn(run);
    if (spawned.pid < 0) {
      finished_(HookResult{run.job_id, HookEnd::failed_to_start, 0, 0, spawned.error});
      continue;
    }
    spdlog::debug("job {}: {} hook started (pid {})", run.job_id, run.name, spawned.pid);
    Child child;
    child.deadline = SteadyClock::now() + run.timeout;
    child.log = std::make_unique<OutputLog>(run.job_id, run.name, limits_);
    child.run = std::move(run);
    child.pid = spawned.pid;
    child.output_fd = spawned.output_fd;
    running.push_back(std::move(child));
  }
}

void HookRunner::run_loop() {
  std::vector<Child> running;
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
    }
    start_queued(running);
    std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}};
    for (const auto& child : running) {
      if (child.output_fd >= 0) fds.push_back({child.output_fd, POLLIN, 0});
    }
    ::poll(fds.data(), fds.size(), running.empty() ? -1 : kLookIntervalMs);
    std::uint64_t wakes = 0;
    [[maybe_unused]] const auto drained = ::read(wake_fd_, &wakes, sizeof(wakes));
    const auto now = SteadyClock::now();
    for (auto it = running.begin(); it != running.end();) {
      it->read_output();
      if (auto result = it->reap(now)) {
        finished_(*result);
        it = running.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& child : running) {
    ::kill(-child.pid, SIGKILL);
    int status = 0;
    while (::waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
    }
    child.close_output();
  }
}

}  // namespace modeldrop::hooks
