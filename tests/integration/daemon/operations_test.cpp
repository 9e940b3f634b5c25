// The operations features through the real daemon: ready markers and polled directories on a
// real FUSE mount. Every wait is bounded.
#include "daemon_fixture.hpp"

#include <sys/stat.h>
#include <unistd.h>

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
    write_config("  - path: shards\n    settle: 1h\n    ready_marker: .ready\n    on_success: " + on_success + "\n");
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
  write_config("  - path: share\n    settle: 200ms\n");
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

}  // namespace
}  // namespace modeldrop::test
