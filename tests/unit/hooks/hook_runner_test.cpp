// The HookRunner with real child processes: exit statuses, spawn failures, the timeout that
// kills the process group, the environment and the limit on hooks running at once.
#include "hooks/hook_runner.hpp"

#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>

namespace modeldrop::hooks {
namespace {

using namespace std::chrono_literals;

class Results {
 public:
  void add(const HookResult& result) {
    std::lock_guard lock(mutex_);
    by_job_[result.job_id] = result;
    changed_.notify_all();
  }
  // The results once `count` hooks have ended, or what there is after `timeout`.
  std::map<std::int64_t, HookResult> wait_for(std::size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return by_job_.size() >= count; });
    return by_job_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::int64_t, HookResult> by_job_;
};

HookRun sh(std::int64_t job, const std::string& script, Duration timeout = 10s) {
  return HookRun{job, "on_success", {"/bin/sh", "-c", script}, {{"MODELDROP_JOB_ID", std::to_string(job)}}, timeout};
}

TEST(HookRunner, ReportsExitStatusesAndSpawnFailures) {
  Results results;
  HookRunner runner([&](const HookResult& r) { results.add(r); });
  runner.submit(sh(1, "exit 0"));
  runner.submit(sh(2, "exit 7"));
  runner.submit(sh(3, "kill -TERM $$"));
  runner.submit(HookRun{4, "on_failure", {"/nonexistent/hook"}, {}, 10s});
  const auto done = results.wait_for(4, 20s);
  ASSERT_EQ(done.size(), 4u);
  EXPECT_EQ(done.at(1).end, HookEnd::exited);
  EXPECT_EQ(done.at(1).exit_code, 0);
  EXPECT_EQ(done.at(2).exit_code, 7);
  EXPECT_EQ(done.at(3).end, HookEnd::signalled);
  EXPECT_EQ(done.at(3).signal, SIGTERM);
  EXPECT_EQ(done.at(4).end, HookEnd::failed_to_start);
  EXPECT_FALSE(done.at(4).error.empty());
}

TEST(HookRunner, TimeoutKillsTheWholeProcessGroup) {
  test::TempDir dir;
  const auto pid_file = dir / "sleeper.pid";
  Results results;
  HookRunner runner([&](const HookResult& r) { results.add(r); });
  const auto started = std::chrono::steady_clock::now();
  runner.submit(sh(1, "sleep 300 & echo $! > " + pid_file.string() + "; wait", 300ms));
  const auto done = results.wait_for(1, 20s);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done.at(1).end, HookEnd::timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 300ms);
  std::ifstream in(pid_file);
  pid_t sleeper = 0;
  in >> sleeper;
  ASSERT_GT(sleeper, 0);
  // The grandchild was in the hook's group: killed too (reaped by init, so allow a moment).
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = test::process_gone(sleeper);
    if (!gone) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(gone);
}

TEST(HookRunner, RunsAtMostTheLimitAtOnce) {
  test::TempDir dir;
  Results results;
  HookRunner runner([&](const HookResult& r) { results.add(r); }, HookRunnerLimits{2, 64 * 1024, 1024});
  // Each hook notes how many run beside it through a directory of live markers.
  const std::string running = (dir / "running").string();
  const std::string script = "mkdir -p " + running + "; touch " + running + "/$MODELDROP_JOB_ID; ls " + running +
                             " | wc -l >> " + (dir / "counts").string() + "; sleep 0.2; rm " + running +
                             "/$MODELDROP_JOB_ID";
  for (int job = 1; job <= 6; ++job) runner.submit(sh(job, script));
  ASSERT_EQ(results.wait_for(6, 30s).size(), 6u);
  std::ifstream counts(dir / "counts");
  int lines = 0;
  for (int count = 0; counts >> count; ++lines) EXPECT_LE(count, 2);
  EXPECT_EQ(lines, 6);
}

TEST(HookRunner, StopKillsRunningHooksWithoutReportingThem) {
  Results results;
  auto runner = std::make_unique<HookRunner>([&](const HookResult& r) { results.add(r); });
  runner->submit(sh(1, "sleep 300"));
  std::this_thread::sleep_for(100ms);
  const auto started = std::chrono::steady_clock::now();
  runner->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_TRUE(results.wait_for(1, 10ms).empty());
}

}  // namespace
}  // namespace modeldrop::hooks
