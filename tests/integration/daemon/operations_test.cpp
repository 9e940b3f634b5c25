// The operations features through the real daemon: ready markers and polled directories on a
// real FUSE mount. Every wait is bounded.
#include "daemon_fixture.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <thread>

namespace modeldrop::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using store::JobState;

ProcessOptions bounded(std::chrono::milliseconds timeout) {
  ProcessOptions options;
  options.timeout = timeout;
  return options;
}

void touch(const fs::path& file) {
  std::ofstream out(file);
}

class ReadyMarkerTest : public DaemonTest {
 protected:
  // A second watch whose settle time no test outlives: only a marker can make its archives ready.
  void SetUp() override {
    DaemonTest::SetUp();
    shards_ = dir_ / "shards";
    fs::create_directories(shards_);
  }
  void write_marker_config(const std::string& on_success = "move") {
    write_config("  - path: shards\n    settle: 1h\n    ready_marker: .ready\n    validate: none\n    on_success: " +
                 on_success + "\n");
  }
  std::optional<store::Job> job_for(const fs::path& path) const {
    for (const auto& job : jobs()) {
      if (job.path == path) return job;
    }
    return std::nullopt;
  }
  bool succeeded(const fs::path& path) const {
    const auto job = job_for(path);
    return job && job->state == JobState::succeeded;
  }

  fs::path shards_;
};

TEST_F(ReadyMarkerTest, ArchiveWaitsForItsMarkerThenLeavesWithIt) {
  write_marker_config();
  auto daemon = start_ready_daemon();
  const auto archive = drop("lora.zip", 64 * 1024, shards_);
  // A sentinel through the same daemon bounds "nothing happened to lora.zip".
  const auto sentinel = drop("sentinel.zip", 1024);
  ASSERT_TRUE(wait_until([&] { return succeeded(sentinel); }, 30s)) << daemon->stderr_text();
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(job_for(archive)) << "queued before its marker appeared";

  touch(shards_ / "lora.zip.ready");
  ASSERT_TRUE(wait_until([&] { return succeeded(archive); }, 30s)) << daemon->stderr_text();
  ASSERT_TRUE(wait_until([&] { return fs::exists(shards_ / "done" / "lora.zip.ready"); }, 10s))
      << daemon->stderr_text();
  EXPECT_TRUE(fs::exists(shards_ / "done" / "lora.zip"));
  EXPECT_FALSE(fs::exists(shards_ / "lora.zip.ready"));
  ASSERT_TRUE(
      wait_until([&] { return job_for(archive)->ready_marker_path == shards_ / "done" / "lora.zip.ready"; }, 10s));
  EXPECT_EQ(jobs().size(), 2u) << "the marker itself is never queued";
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ReadyMarkerTest, MarkerBeforeItsArchiveQueuesTheArchiveWhenItArrives) {
  write_marker_config();
  auto daemon = start_ready_daemon();
  touch(shards_ / "early.tar.ready");
  const auto archive = drop("early.tar", 32 * 1024, shards_);
  ASSERT_TRUE(wait_until([&] { return succeeded(archive); }, 30s)) << daemon->stderr_text();
  ASSERT_TRUE(wait_until([&] { return fs::exists(shards_ / "done" / "early.tar.ready"); }, 10s))
      << daemon->stderr_text();
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ReadyMarkerTest, MarkerWithoutArchiveIsIgnored) {
  write_marker_config();
  auto daemon = start_ready_daemon();
  touch(shards_ / "ghost.zip.ready");
  const auto sentinel = drop("sentinel.zip", 1024, shards_);
  touch(shards_ / "sentinel.zip.ready");
  ASSERT_TRUE(wait_until([&] { return succeeded(sentinel); }, 30s)) << daemon->stderr_text();
  EXPECT_EQ(jobs().size(), 1u);
  EXPECT_TRUE(fs::exists(shards_ / "ghost.zip.ready")) << "a marker without its archive is left alone";
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ReadyMarkerTest, MarkerOfAKeptArchiveIsRemovedWhenTheJobEnds) {
  write_marker_config("keep");
  // Found by the startup scan: archive and marker both there before the daemon starts.
  const auto archive = drop("kept.zip", 16 * 1024, shards_);
  touch(shards_ / "kept.zip.ready");
  auto daemon = start_ready_daemon();
  ASSERT_TRUE(wait_until([&] { return succeeded(archive); }, 30s)) << daemon->stderr_text();
  ASSERT_TRUE(wait_until([&] { return !fs::exists(shards_ / "kept.zip.ready"); }, 10s)) << daemon->stderr_text();
  EXPECT_TRUE(fs::exists(archive));
  ASSERT_TRUE(wait_until([&] { return !job_for(archive)->ready_marker_path; }, 10s));
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
  // A restart finds the kept archive again without a marker: it is the same file, never re-sent.
  auto again = start_ready_daemon();
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(api_->files().size(), 1u);
  again->signal(SIGTERM);
  EXPECT_EQ(again->wait(10s), 0);
}

// A bindfs mount written through its backing directory raises no inotify event on the mount:
// the case of a network share written from another machine.
class PolledMountTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    backing_ = dir_ / "backing";
    mount_ = dir_ / "share";
    fs::create_directories(backing_);
    fs::create_directories(mount_);
    if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "FUSE is unavailable here (no usable /dev/fuse)";
    if (::access("/usr/bin/bindfs", X_OK) != 0) {
      GTEST_SKIP() << "bindfs is not installed (scripts/install-deps installs it)";
    }
    const auto mounted = run_process({"/usr/bin/bindfs", backing_.string(), mount_.string()}, bounded(20s));
    if (mounted.exit_code != 0) {
      GTEST_SKIP() << "cannot mount bindfs (FUSE unavailable here): " << mounted.err << " (exit " << mounted.exit_code
                   << ")";
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) run_process({"/usr/bin/fusermount", "-uz", mount_.string()}, bounded(20s));
    DaemonTest::TearDown();
  }

  fs::path backing_;
  fs::path mount_;
  bool mounted_ = false;
};

TEST_F(PolledMountTest, FileWrittenBehindAFuseMountIsFoundByAutomaticPolling) {
  // `poll` is left at its default (auto): the FUSE mount is recognised and rescanned every 10 s.
  write_config("  - path: share\n    settle: 200ms\n    validate: none\n");
  auto daemon = start_ready_daemon();
  const auto behind = drop("remote.zip", 48 * 1024, backing_);
  const auto seen = mount_ / "remote.zip";
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& job : jobs()) {
          if (job.path == seen && job.state == JobState::succeeded) return true;
        }
        return false;
      },
      40s))
      << daemon->stderr_text();
  EXPECT_NE(daemon->stderr_text().find("is on FUSE"), std::string::npos) << daemon->stderr_text();
  EXPECT_TRUE(wait_until([&] { return fs::exists(backing_ / "done" / "remote.zip"); }, 10s));
  EXPECT_FALSE(fs::exists(behind));
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

// Completion hooks, run by the real daemon. Hooks are argv lists; where a test needs shell
// features it names /bin/sh itself, as an operator would.
class HookTest : public DaemonTest {
 protected:
  // The script runs in the test's directory.
  std::string sh_hook(const std::string& key, const std::string& script) const {
    std::string quoted;
    for (char c : "cd '" + dir_.path().string() + "' && " + script) {
      if (c == '\\' || c == '"') quoted += '\\';
      quoted += c;
    }
    return "  " + key + ": [\"/bin/sh\", \"-c\", \"" + quoted + "\"]\n";
  }
  void write_hooks(const std::string& keys) { write_config("hooks:\n" + keys); }

  std::optional<std::string> hook_state(store::JobId job) const {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(database_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      sqlite3_close(db);
      return std::nullopt;
    }
    sqlite3_busy_timeout(db, 2000);
    sqlite3_stmt* statement = nullptr;
    std::optional<std::string> state;
    if (sqlite3_prepare_v2(db, "SELECT hook_state FROM jobs WHERE id = ?1", -1, &statement, nullptr) == SQLITE_OK) {
      sqlite3_bind_int64(statement, 1, job);
      if (sqlite3_step(statement) == SQLITE_ROW && sqlite3_column_type(statement, 0) != SQLITE_NULL) {
        state = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
      }
    }
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return state;
  }

  std::vector<std::string> lines_of(const fs::path& file) const {
    std::ifstream in(file);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  static std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t count = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
    return count;
  }
};

TEST_F(HookTest, SuccessHookGetsTheJobInItsEnvironmentAfterTheMove) {
  write_hooks(sh_hook("on_success",
                      "env | grep ^MODELDROP_ | sort > hook-$MODELDROP_JOB_ID.env; "
                      "test -e \"$MODELDROP_PATH\" && echo present >> hook-$MODELDROP_JOB_ID.env; "
                      "read line; echo \"stdin:$line\" >> hook-$MODELDROP_JOB_ID.env; echo hello from the hook"));
  auto daemon = start_ready_daemon();
  drop("adapter.zip", 8 * 1024);
  const auto env_file = dir_ / "hook-1.env";
  ASSERT_TRUE(wait_until([&] { return hook_state(1) == "done"; }, 30s)) << daemon->stderr_text();
  const auto lines = lines_of(env_file);
  const auto job = jobs().front();
  const std::vector<std::string> expected{"MODELDROP_ERROR=",
                                          "MODELDROP_FILE_ID=" + job.file_id.value_or("?"),
                                          "MODELDROP_JOB_ID=1",
                                          "MODELDROP_MODEL_NAME=",
                                          "MODELDROP_PATH=" + (incoming_ / "done" / "adapter.zip").string(),
                                          "MODELDROP_PROJECT_ID=",
                                          "MODELDROP_STATE=succeeded",
                                          "present",
                                          "stdin:"};
  EXPECT_EQ(lines, expected) << daemon->stderr_text();
  EXPECT_NE(daemon->stderr_text().find("job 1: on_success hook: hello from the hook"), std::string::npos)
      << daemon->stderr_text();
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(HookTest, FailingHookIsLoggedAndNotRetried) {
  write_hooks(sh_hook("on_failure", "echo $MODELDROP_STATE:$MODELDROP_ERROR >> failures.txt; exit 3"));
  Fault unprocessable;
  unprocessable.kind = FaultKind::status;
  unprocessable.status = 422;
  unprocessable.body = R"({"detail":[{"msg":"bad adapter"}]})";
  api_->set_default_fault(unprocessable);
  auto daemon = start_ready_daemon();
  drop("broken.zip", 4 * 1024);
  ASSERT_TRUE(wait_until([&] { return hook_state(1) == "done"; }, 30s)) << daemon->stderr_text();
  EXPECT_NE(daemon->stderr_text().find("job 1: hook failed with exit status 3 (not retried)"), std::string::npos)
      << daemon->stderr_text();
  std::this_thread::sleep_for(1500ms);  // more than one periodic look for due hooks
  const auto failures = lines_of(dir_ / "failures.txt");
  ASSERT_EQ(failures.size(), 1u) << daemon->stderr_text();
  EXPECT_EQ(failures[0].rfind("failed:", 0), 0u) << failures[0];
  EXPECT_NE(failures[0].find("422"), std::string::npos) << failures[0];
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(HookTest, HangingHooksAreKilledWithTheirGroupAtTheTimeoutAndNeverDelayUploads) {
  // Each hook starts a grandchild in its group and waits for it; at most 4 run at once, so the
  // fifth starts only when the first ones are killed, 2 s later.
  write_hooks(sh_hook("on_success",
                      "date +%s.%N >> started.txt; "
                      "sleep 300 & echo $! > sleeper-$MODELDROP_JOB_ID.pid; wait") +
              "  timeout: 2s\n");
  auto daemon = start_ready_daemon();
  for (int i = 0; i < 6; ++i) drop("model-" + std::to_string(i) + ".zip", 4 * 1024);
  // All six upload while their hooks hang.
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 6); }, 30s)) << daemon->stderr_text();
  ASSERT_TRUE(wait_until(
      [&] {
        for (store::JobId id = 1; id <= 6; ++id) {
          if (hook_state(id) != "done") return false;
        }
        return true;
      },
      40s))
      << daemon->stderr_text();
  EXPECT_EQ(count_of(daemon->stderr_text(), "hook killed after 2s"), 6u) << daemon->stderr_text();
  std::vector<double> started;
  for (const auto& line : lines_of(dir_ / "started.txt")) started.push_back(std::stod(line));
  ASSERT_EQ(started.size(), 6u);
  std::sort(started.begin(), started.end());
  EXPECT_GE(started[4] - started[0], 1.5) << "a fifth hook ran beside four hanging ones";
  for (store::JobId id = 1; id <= 6; ++id) {
    const auto pid = lines_of(dir_ / ("sleeper-" + std::to_string(id) + ".pid"));
    ASSERT_EQ(pid.size(), 1u);
    EXPECT_TRUE(wait_until([&] { return process_gone(std::stoi(pid[0])); }, 5s))
        << "the hook's grandchild outlived the timeout";
  }
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(HookTest, FloodingHookIsLoggedOnlyUpToItsBound) {
  // 2 MB of output in long and short lines.
  write_hooks(sh_hook("on_success", "head -c 1000000 /dev/zero | tr '\\\\0' x; echo; yes short line | head -n 100000"));
  auto daemon = start_ready_daemon();
  drop("chatty.zip", 4 * 1024);
  ASSERT_TRUE(wait_until([&] { return hook_state(1) == "done"; }, 30s)) << daemon->stderr_text();
  const std::string log = daemon->stderr_text();
  EXPECT_NE(log.find("job 1: hook finished"), std::string::npos) << log.substr(0, 2000);
  EXPECT_NE(log.find("more bytes of output not logged"), std::string::npos);
  EXPECT_LT(log.size(), 512u * 1024) << "the hook's output flooded the log";
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(HookTest, HookCutShortByACrashRunsAgainAtRestartAndFinishedOnesNever) {
  write_hooks(sh_hook("on_success",
                      "echo $MODELDROP_JOB_ID >> runs.txt; "
                      "if [ $MODELDROP_JOB_ID = 2 ] && [ ! -e second-run ]; then touch second-run; sleep 5; fi"));
  auto daemon = start_ready_daemon();
  drop("first.zip", 4 * 1024);
  ASSERT_TRUE(wait_until([&] { return hook_state(1) == "done"; }, 30s)) << daemon->stderr_text();
  drop("second.zip", 4 * 1024);
  // Job 2 has ended and its hook is running: the daemon dies.
  ASSERT_TRUE(wait_until([&] { return fs::exists(dir_ / "second-run"); }, 30s)) << daemon->stderr_text();
  EXPECT_EQ(hook_state(2), "due");
  daemon->signal(SIGKILL);
  daemon->wait(10s);

  auto again = start_ready_daemon();
  ASSERT_TRUE(wait_until([&] { return hook_state(2) == "done"; }, 30s)) << again->stderr_text();
  std::this_thread::sleep_for(1500ms);  // more than one periodic look for due hooks
  EXPECT_EQ(lines_of(dir_ / "runs.txt"), (std::vector<std::string>{"1", "2", "2"}));
  again->signal(SIGTERM);
  EXPECT_EQ(again->wait(10s), 0);
}

TEST_F(HookTest, CancelledJobGetsTheFailureHook) {
  write_hooks(sh_hook("on_failure", "echo $MODELDROP_STATE > cancelled.txt"));
  api_->set_default_fault(Fault{FaultKind::stall});
  auto daemon = start_ready_daemon();
  drop("slow.zip", 4 * 1024);
  ASSERT_TRUE(wait_until([&] { return !jobs().empty() && jobs().front().state == JobState::uploading; }, 30s));
  ASSERT_EQ(run_cli({"cancel", "1"}).exit_code, 0);
  ASSERT_TRUE(wait_until([&] { return hook_state(1) == "done"; }, 30s)) << daemon->stderr_text();
  EXPECT_EQ(lines_of(dir_ / "cancelled.txt"), (std::vector<std::string>{"cancelled"}));
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

}  // namespace
}  // namespace modeldrop::test
