#pragma once

// Runs completion hooks as child processes on a thread of its own, so spawning, waiting and
// reading their output never touch the event loop: at most `max_running` at once (the rest
// wait their turn), each in its own process group, killed as a group after its timeout, with
// stdin from /dev/null and its output logged line by line with the job id, up to a bound.

#include "common/duration.hpp"

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace modeldrop::hooks {

struct HookRun {
  std::int64_t job_id = 0;
  std::string name;                                              // "on_success" / "on_failure", for the log
  std::vector<std::string> argv;                                 // argv[0] is looked up in PATH when it has no '/'
  std::vector<std::pair<std::string, std::string>> environment;  // set on top of the daemon's
  Duration timeout{60000};
};

enum class HookEnd {
  exited,           // exit_code says how
  signalled,        // it died of `signal`
  timed_out,        // killed (its whole process group) at the timeout
  failed_to_start,  // spawn failed: `error` says why
};

struct HookResult {
  std::int64_t job_id = 0;
  HookEnd end = HookEnd::exited;
  int exit_code = 0;
  int signal = 0;
  std::string error;
};

struct HookRunnerLimits {
  std::size_t max_running = 4;
  // Output beyond this many bytes per hook is read and counted, not logged.
  std::size_t max_logged_bytes = 64 * 1024;
  // A longer line is logged in pieces of this size.
  std::size_t max_line_bytes = 1024;
};

class HookRunner {
 public:
  // `finished` runs on the runner's thread once per hook that ran to an end (not for hooks
  // still queued or running at stop()).
  using Finished = std::function<void(const HookResult&)>;

  explicit HookRunner(Finished finished, HookRunnerLimits limits = {});
  ~HookRunner();
  HookRunner(const HookRunner&) = delete;
  HookRunner& operator=(const HookRunner&) = delete;

  void submit(HookRun run);
  // Kills every running hook's process group and forgets the queued ones; joins the thread.
  void stop();

 private:
  struct Child;
  void run_loop();
  void start_queued(std::vector<Child>& running);
  bool wake_fd_ready();

  Finished finished_;
  HookRunnerLimits limits_;
  std::mutex mutex_;
  std::deque<HookRun> queue_;
  bool stopping_ = false;
  int wake_fd_ = -1;  // an eventfd: a new hook or stop()
  std::thread thread_;
};

}  // namespace modeldrop::hooks
