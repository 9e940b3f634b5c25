// `poll` against a real FUSE mount (bindfs): files written through the backing directory raise
// no inotify event on the mount, as writes from another machine to a network share do.
#include "watch/drop_watcher.hpp"
#include "watch/filesystem_kind.hpp"

#include "support/run_process.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include <unistd.h>
#include <fstream>
#include <functional>

namespace modeldrop::watch {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

class Recorder final : public WatchEvents {
 public:
  void file_ready(const ReadyFile& file) override {
    ready.push_back(file);
    ready_at.push_back(SteadyClock::now());
  }
  void file_removed(const fs::path& /*path*/) override {}

  std::vector<ReadyFile> ready;
  std::vector<SteadyClock::time_point> ready_at;
};

test::ProcessOptions bounded(std::chrono::milliseconds timeout) {
  test::ProcessOptions options;
  options.timeout = timeout;
  return options;
}

class NetworkPollTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backing_ = dir_ / "backing";
    mount_ = dir_ / "share";
    fs::create_directories(backing_);
    fs::create_directories(mount_);
    if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "FUSE is unavailable here (no usable /dev/fuse)";
    if (::access("/usr/bin/bindfs", X_OK) != 0) {
      GTEST_SKIP() << "bindfs is not installed (scripts/install-deps installs it)";
    }
    const auto mounted = test::run_process({"/usr/bin/bindfs", backing_.string(), mount_.string()}, bounded(20s));
    if (mounted.exit_code != 0) GTEST_SKIP() << "cannot mount bindfs (FUSE unavailable here): " << mounted.err;
    mounted_ = true;
  }
  void TearDown() override {
    watcher_.reset();
    if (mounted_) test::run_process({"/usr/bin/fusermount", "-uz", mount_.string()}, bounded(20s));
  }

  void start(config::PollSetting poll, Duration network_interval) {
    config::WatchConfig watch;
    watch.path = mount_;
    watch.settle = 300ms;
    watch.done_dir = mount_ / "done";
    watch.failed_dir = mount_ / "failed";
    watch.poll = poll;
    DropWatcherOptions options;
    options.network_poll_interval = network_interval;
    watcher_ = std::make_unique<DropWatcher>(io_, std::vector{watch}, events_, options);
    watcher_->start();
  }

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    while (!done()) {
      if (SteadyClock::now() >= deadline) return false;
      if (io_.stopped()) io_.restart();
      io_.run_for(5ms);
    }
    return true;
  }

  static void write_file(const fs::path& path, std::size_t bytes) {
    std::ofstream out(path, std::ios::binary);
    out << std::string(bytes, 'n');
  }

  test::TempDir dir_;
  fs::path backing_;
  fs::path mount_;
  bool mounted_ = false;
  boost::asio::io_context io_;
  Recorder events_;
  std::unique_ptr<DropWatcher> watcher_;
};

TEST_F(NetworkPollTest, TheMountIsRecognisedAsFuse) {
  EXPECT_EQ(network_filesystem_of(mount_), "FUSE");
  EXPECT_EQ(network_filesystem_of(backing_), std::nullopt);
}

TEST_F(NetworkPollTest, AutomaticPollingFindsAFileWrittenBehindTheMountAfterItSettles) {
  start({}, 200ms);
  const auto written_at = SteadyClock::now();
  write_file(backing_ / "remote.zip", 4096);
  ASSERT_TRUE(run_until([&] { return !events_.ready.empty(); }, 10s));
  EXPECT_EQ(events_.ready[0].path, mount_ / "remote.zip");
  EXPECT_EQ(events_.ready[0].size, 4096u);
  EXPECT_GE(events_.ready_at[0] - written_at, 300ms) << "the settle time applies to polled directories too";
}

TEST_F(NetworkPollTest, WithPollingOffTheSameWriteGoesUnseen) {
  start({config::PollSetting::Kind::off, Duration{0}}, 200ms);
  write_file(backing_ / "remote.zip", 4096);
  EXPECT_FALSE(run_until([&] { return !events_.ready.empty(); }, 1500ms));
  // The same file written through the mount raises its events.
  write_file(mount_ / "local.zip", 4096);
  ASSERT_TRUE(run_until([&] { return !events_.ready.empty(); }, 10s));
  EXPECT_EQ(events_.ready[0].path, mount_ / "local.zip");
}

TEST_F(NetworkPollTest, AnExplicitIntervalPollsWhateverTheDefault) {
  start({config::PollSetting::Kind::every, Duration{250}}, std::chrono::hours(1));
  write_file(backing_ / "remote.tar", 2048);
  ASSERT_TRUE(run_until([&] { return !events_.ready.empty(); }, 10s));
  EXPECT_EQ(events_.ready[0].path, mount_ / "remote.tar");
}

TEST(NetworkFilesystemName, KnowsTheNetworkFilesystemsAndNotTheLocalOnes) {
  EXPECT_EQ(network_filesystem_name(0x6969), "NFS");
  EXPECT_EQ(network_filesystem_name(0x01021997), "9p");
  EXPECT_EQ(network_filesystem_name(0x65735546), "FUSE");
  // statfs reports CIFS's magic as a negative long.
  EXPECT_EQ(network_filesystem_name(static_cast<std::int32_t>(0xFF534D42)), "CIFS");
  EXPECT_EQ(network_filesystem_name(0xEF53), std::nullopt);      // ext4
  EXPECT_EQ(network_filesystem_name(0x01021994), std::nullopt);  // tmpfs
}

}  // namespace
}  // namespace modeldrop::watch
