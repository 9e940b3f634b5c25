// The drop-directory watcher against the real inotify on real temp directories. Every wait
// is for a condition, bounded in time; quiet periods (nothing more must arrive) are bounded too.
#include "watch/drop_watcher.hpp"
#include "watch/after_action.hpp"

#include "support/run_process.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <linux/capability.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <boost/asio/io_context.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <fstream>
#include <functional>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

namespace modeldrop::watch {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::TempDir;
using SteadyClock = std::chrono::steady_clock;

// What the job store's idempotent enqueue would see: (path, inode, size, mtime) is one job.
using FileKey = std::tuple<std::string, ino_t, std::uint64_t, std::int64_t>;

class RecordingEvents final : public WatchEvents {
 public:
  void file_ready(const ReadyFile& file) override {
    ready.push_back(file);
    ready_at.push_back(SteadyClock::now());
    unique.emplace(file.path.string(), file.inode, file.size, file.mtime_ns);
  }
  void file_removed(const fs::path& path) override { removed.push_back(path.string()); }
  void file_changing(const fs::path& path) override { changing.push_back(path.string()); }
  void rescan_finished(std::size_t /*watch_index*/) override { ++rescans; }

  [[nodiscard]] std::size_t ready_count(const fs::path& path) const {
    return static_cast<std::size_t>(
        std::count_if(ready.begin(), ready.end(), [&](const ReadyFile& f) { return f.path == path; }));
  }
  [[nodiscard]] bool was_removed(const fs::path& path) const {
    return std::find(removed.begin(), removed.end(), path.string()) != removed.end();
  }
  [[nodiscard]] const ReadyFile* last_ready(const fs::path& path) const {
    for (auto it = ready.rbegin(); it != ready.rend(); ++it) {
      if (it->path == path) return &*it;
    }
    return nullptr;
  }

  std::vector<ReadyFile> ready;
  std::vector<SteadyClock::time_point> ready_at;
  std::set<FileKey> unique;
  std::vector<std::string> removed;
  std::vector<std::string> changing;
  std::size_t rescans = 0;
};

void write_file(const fs::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::size_t read_sysctl(const char* file) {
  std::ifstream in(file);
  std::size_t value = 0;
  in >> value;
  return value;
}

class DropWatcherTest : public ::testing::Test {
 protected:
  DropWatcherTest() {
    incoming_ = dir_ / "incoming";
    fs::create_directories(incoming_);
  }

  [[nodiscard]] config::WatchConfig watch_config(const fs::path& path, Duration settle = 100ms) const {
    config::WatchConfig watch;
    watch.path = path;
    watch.settle = settle;
    watch.done_dir = path / "done";
    watch.failed_dir = path / "failed";
    return watch;
  }

  static DropWatcherOptions fast_options() {
    DropWatcherOptions options;
    options.retry_interval = 100ms;
    return options;
  }

  DropWatcher& start(std::vector<config::WatchConfig> watches, DropWatcherOptions options = fast_options()) {
    // A directory that exists is watched and scanned inside start(): nothing to wait for.
    watcher_ = std::make_unique<DropWatcher>(io_, std::move(watches), events_, options);
    watcher_->start();
    return *watcher_;
  }

  // Runs the event loop until `done` holds; false after `timeout`.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = SteadyClock::now() + timeout;
    while (!done()) {
      if (SteadyClock::now() >= deadline) return false;
      if (io_.stopped()) io_.restart();
      io_.run_for(5ms);
    }
    return true;
  }

  // Lets the loop work for `period` (to show that nothing more arrives).
  void run_quietly(std::chrono::milliseconds period) {
    const auto until = SteadyClock::now() + period;
    run_until([&] { return SteadyClock::now() >= until; }, period + 1s);
  }

  boost::asio::io_context io_;
  RecordingEvents events_;
  TempDir dir_;
  fs::path incoming_;
  std::unique_ptr<DropWatcher> watcher_;
};

// --- ready detection -------------------------------------------------------------------------

void write_in_chunks(const fs::path& path, std::size_t total, std::size_t chunk, std::chrono::milliseconds pause,
                     SteadyClock::time_point& closing_at) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  const std::string block(chunk, 'm');
  for (std::size_t written = 0; written < total; written += chunk) {
    ASSERT_EQ(::write(fd, block.data(), block.size()), static_cast<ssize_t>(block.size()));
    std::this_thread::sleep_for(pause);  // the writer's own pace, shorter than settle
  }
  // Taken before close(): the IN_CLOSE_WRITE may be handled before close() even returns.
  closing_at = SteadyClock::now();
  ::close(fd);
}

TEST_F(DropWatcherTest, ChunkedWriterGivesOneReadyFileAfterTheLastWrite) {
  constexpr std::size_t kTotal = 8 * 1024 * 1024;
  constexpr auto kSettle = 500ms;
  start({watch_config(incoming_, kSettle)});
  const fs::path file = incoming_ / "model.zip";
  SteadyClock::time_point closing_at;
  std::thread writer(write_in_chunks, file, kTotal, kTotal / 32, 30ms, std::ref(closing_at));
  const bool reported = run_until([&] { return !events_.ready.empty(); }, 30s);
  writer.join();
  ASSERT_TRUE(reported);
  run_quietly(kSettle + 300ms);
  ASSERT_EQ(events_.ready.size(), 1u);
  EXPECT_EQ(events_.ready[0].path, file);
  EXPECT_EQ(events_.ready[0].size, kTotal);
  EXPECT_GE(events_.ready_at[0] - closing_at, kSettle);
}

TEST_F(DropWatcherTest, SettleZeroWaitsForTheWriterToClose) {
  constexpr std::size_t kTotal = 8 * 1024 * 1024;
  start({watch_config(incoming_, 0ms)});
  const fs::path file = incoming_ / "model.zip";
  SteadyClock::time_point closing_at;
  std::thread writer(write_in_chunks, file, kTotal, kTotal / 16, 20ms, std::ref(closing_at));
  const bool reported = run_until([&] { return !events_.ready.empty(); }, 30s);
  writer.join();
  ASSERT_TRUE(reported);
  run_quietly(300ms);
  ASSERT_EQ(events_.ready.size(), 1u);
  EXPECT_EQ(events_.ready[0].size, kTotal);
  EXPECT_GE(events_.ready_at[0], closing_at);
}

TEST_F(DropWatcherTest, RenameIntoPlaceBothConventions) {
  start({watch_config(incoming_)});
  const std::string content(1024 * 1024, 'r');
  write_file(incoming_ / "curl.zip.part", content);
  write_file(incoming_ / ".rsync.tar.gz.AbC123", content);
  run_quietly(300ms);
  EXPECT_TRUE(events_.ready.empty());
  fs::rename(incoming_ / "curl.zip.part", incoming_ / "curl.zip");
  fs::rename(incoming_ / ".rsync.tar.gz.AbC123", incoming_ / "rsync.tar.gz");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() >= 2; }));
  run_quietly(300ms);
  EXPECT_EQ(events_.ready.size(), 2u);
  EXPECT_EQ(events_.ready_count(incoming_ / "curl.zip"), 1u);
  EXPECT_EQ(events_.ready_count(incoming_ / "rsync.tar.gz"), 1u);
  for (const auto& ready : events_.ready) EXPECT_EQ(ready.size, content.size());
}

// A rename into the folder is the writer saying "complete": no settle wait, however long.
TEST_F(DropWatcherTest, ARenameIntoTheFolderIsReadyWithoutTheSettleWait) {
  start({watch_config(incoming_, std::chrono::hours(1))});
  const std::string content(64 * 1024, 'r');
  write_file(dir_ / "staged.zip", content);
  write_file(incoming_ / "in-place.zip", content);
  fs::rename(dir_ / "staged.zip", incoming_ / "renamed.zip");
  ASSERT_TRUE(run_until([&] { return !events_.ready.empty(); }, 10s));
  run_quietly(300ms);
  ASSERT_EQ(events_.ready.size(), 1u);
  EXPECT_EQ(events_.ready[0].path, incoming_ / "renamed.zip");
  EXPECT_EQ(events_.ready[0].size, content.size());
  EXPECT_EQ(watcher_->settling_count(), 1u);  // the file written in place still waits its hour
}

TEST_F(DropWatcherTest, ANameNoPatternMatchesIsLoggedOnceAtInfo) {
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  auto capture = std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  capture->set_level(spdlog::level::info);
  spdlog::set_default_logger(capture);
  start({watch_config(incoming_)});
  write_file(incoming_ / "notes.txt", "first");
  write_file(incoming_ / "notes.txt", "second");
  write_file(incoming_ / "model.zip.part", "x");
  write_file(incoming_ / "sentinel.zip", "x");
  const bool reported = run_until([&] { return !events_.ready.empty(); });
  run_quietly(200ms);
  spdlog::set_default_logger(previous);
  ASSERT_TRUE(reported);
  const std::string text = log.str();
  const std::string line = "ignoring " + (incoming_ / "notes.txt").string() +
                           ": its name matches none of the watch's patterns (*.zip, *.tar, *.tar.gz, *.tgz)";
  std::size_t count = 0;
  for (auto pos = text.find(line); pos != std::string::npos; pos = text.find(line, pos + 1)) ++count;
  EXPECT_EQ(count, 1u) << text;
  EXPECT_EQ(text.find("model.zip.part"), std::string::npos) << text;
}

TEST_F(DropWatcherTest, IgnoredNamesAndOtherExtensionsAreNeverReported) {
  start({watch_config(incoming_)});
  for (const char* name : {".hidden.zip", "a.zip.part", "a.zip.partial", "a.zip.tmp", "a.zip.crdownload", ".a.zip.swp",
                           "a.zip.swp", "a.zip~", "notes.txt", "model.rar", "model.gz"}) {
    write_file(incoming_ / name, "x");
  }
  write_file(incoming_ / "UPPER.ZIP", "x");
  write_file(incoming_ / "sentinel.tgz", "x");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() >= 2; }));
  run_quietly(300ms);
  std::set<fs::path> reported;
  for (const auto& ready : events_.ready) reported.insert(ready.path);
  EXPECT_EQ(reported, (std::set<fs::path>{incoming_ / "UPPER.ZIP", incoming_ / "sentinel.tgz"}));
  EXPECT_EQ(watcher_->settling_count(), 0u);
}

TEST_F(DropWatcherTest, AFileChangedAfterItWasReportedIsReportedAgainOnceSettled) {
  start({watch_config(incoming_)});
  const fs::path file = incoming_ / "model.zip";
  write_file(file, "12345");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 1; }));
  {
    std::ofstream out(file, std::ios::app);
    out << "67890";
  }
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 2; }));
  EXPECT_EQ(events_.changing, std::vector<std::string>{file.string()});
  EXPECT_EQ(events_.ready[1].size, 10u);
  EXPECT_EQ(events_.unique.size(), 2u);  // a changed file is a new (path, inode, size, mtime)
}

TEST_F(DropWatcherTest, AnMtimeSetAfterTheLastWriteIsFollowed) {
  // cp -p writes, closes, then sets the source's mtime: the file's identity is the final one.
  TempDir outside;
  const auto source = outside.write("model.zip", "preserved");
  const auto old_time = fs::last_write_time(source) - std::chrono::hours(24);
  fs::last_write_time(source, old_time);
  start({watch_config(incoming_, 0ms)});
  const auto copied = test::run_process({"/bin/cp", "-p", source.string(), incoming_.string() + "/"});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  struct stat st {};
  ASSERT_EQ(::stat((incoming_ / "model.zip").c_str(), &st), 0);
  const std::int64_t final_mtime = std::int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  ASSERT_TRUE(run_until([&] {
    const ReadyFile* last = events_.last_ready(incoming_ / "model.zip");
    return last != nullptr && last->mtime_ns == final_mtime;
  }));
  // touch on a reported file (atime and mtime: IN_ATTRIB): reported again with the new mtime.
  // (An mtime-only change arrives as IN_MODIFY, which settle 0 treats as a writer at work.)
  const std::size_t before = events_.ready.size();
  const auto touched =
      test::run_process({"/usr/bin/touch", "-d", "2021-06-01 12:00", (incoming_ / "model.zip").string()});
  ASSERT_EQ(touched.exit_code, 0) << touched.err;
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == before + 1; }));
  EXPECT_EQ(events_.changing.back(), (incoming_ / "model.zip").string());
}

TEST_F(DropWatcherTest, TheSafetyRescanCatchesWhatNoEventReported) {
  const fs::path file = incoming_ / "model.zip";
  write_file(file, "12345");
  // Written through a hard link elsewhere, the inode changes without an event for this directory.
  fs::create_hard_link(file, incoming_.parent_path() / "elsewhere-link");
  auto options = fast_options();
  options.safety_rescan_interval = 300ms;
  start({watch_config(incoming_)}, options);
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 1; }));
  {
    std::ofstream out(incoming_.parent_path() / "elsewhere-link", std::ios::app);
    out << "67890";
  }
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 2; }));
  EXPECT_EQ(events_.ready[1].size, 10u);
}

TEST_F(DropWatcherTest, ADeletedFileIsReportedRemoved) {
  start({watch_config(incoming_)});
  const fs::path file = incoming_ / "model.zip";
  write_file(file, "x");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 1; }));
  fs::remove(file);
  ASSERT_TRUE(run_until([&] { return events_.was_removed(file); }));
  // A file deleted while it settles is never reported.
  write_file(incoming_ / "short-lived.zip", "x");
  fs::remove(incoming_ / "short-lived.zip");
  run_quietly(300ms);
  EXPECT_EQ(events_.ready.size(), 1u);
  EXPECT_EQ(watcher_->settling_count(), 0u);
}

TEST_F(DropWatcherTest, OnlyRegularFilesAreQueuedAndTheRestIsLoggedOnce) {
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  TempDir outside;
  const auto target = outside.write("real.zip", "x");
  ASSERT_EQ(::mkfifo((incoming_ / "pipe.zip").c_str(), 0600), 0);
  fs::create_symlink(target, incoming_ / "link.zip");
  fs::create_directory(incoming_ / "folder.zip");
  write_file(incoming_ / "ok.zip", "x");
  start({watch_config(incoming_)});
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 1; }));
  fs::create_symlink(target, incoming_ / "later-link.zip");
  watcher_->rescan_all();
  watcher_->rescan_all();
  run_quietly(300ms);
  spdlog::set_default_logger(previous);
  EXPECT_EQ(events_.ready.size(), 1u);
  EXPECT_EQ(events_.ready[0].path, incoming_ / "ok.zip");
  const std::string text = log.str();
  const auto occurrences = [&](const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
    return n;
  };
  EXPECT_EQ(occurrences("skipping " + (incoming_ / "pipe.zip").string() + ":"), 1u) << text;
  EXPECT_EQ(occurrences("skipping " + (incoming_ / "link.zip").string() + ":"), 1u) << text;
  EXPECT_EQ(occurrences("skipping " + (incoming_ / "folder.zip").string() + ":"), 1u) << text;
  EXPECT_EQ(occurrences("skipping " + (incoming_ / "later-link.zip").string() + ":"), 1u) << text;
}

// --- startup, rescans, overflow --------------------------------------------------------------

TEST_F(DropWatcherTest, FilesThatArrivedWhileDownAreFoundAndNothingIsQueuedTwice) {
  for (int i = 0; i < 20; ++i) write_file(incoming_ / ("early-" + std::to_string(i) + ".zip"), std::to_string(i));
  start({watch_config(incoming_)});
  EXPECT_EQ(events_.rescans, 1u);
  ASSERT_TRUE(run_until([&] { return events_.unique.size() == 20; }));
  run_quietly(300ms);
  EXPECT_EQ(events_.ready.size(), 20u);

  // A forced rescan reports nothing again.
  watcher_->rescan_all();
  run_quietly(300ms);
  EXPECT_EQ(events_.ready.size(), 20u);

  // A restart reports the same files again (a new process knows nothing); the receiver's
  // same-file rule absorbs them, so the set of jobs does not grow.
  watcher_.reset();
  start({watch_config(incoming_)});
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 40; }));
  run_quietly(300ms);
  EXPECT_EQ(events_.ready.size(), 40u);
  EXPECT_EQ(events_.unique.size(), 20u);
}

TEST_F(DropWatcherTest, AnOverflowLosesNothing) {
  write_file(incoming_ / "old.zip", "old");
  start({watch_config(incoming_)});
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 1; }));
  // While the loop is not reading, events pile up in the kernel; the simulated overflow
  // throws them all away.
  for (int i = 0; i < 50; ++i) write_file(incoming_ / ("new-" + std::to_string(i) + ".zip"), std::to_string(i));
  fs::remove(incoming_ / "old.zip");
  watcher_->simulate_queue_overflow_for_test();
  EXPECT_EQ(watcher_->overflow_count(), 1u);
  ASSERT_TRUE(run_until([&] { return events_.unique.size() == 51; }));
  run_quietly(300ms);
  EXPECT_EQ(events_.ready.size(), 51u);
  EXPECT_TRUE(events_.was_removed(incoming_ / "old.zip"));
}

TEST_F(DropWatcherTest, ARealQueueOverflowLosesNothing) {
  const std::size_t max_queued = read_sysctl("/proc/sys/fs/inotify/max_queued_events");
  // Five events per file (create, modify, close, moved_from, moved_to): twice the queue.
  const std::size_t files = std::max<std::size_t>(1000, 2 * max_queued / 5);
  if (max_queued == 0 || files > 40000) GTEST_SKIP() << "fs.inotify.max_queued_events = " << max_queued;
  start({watch_config(incoming_)});
  for (std::size_t i = 0; i < files; ++i) {
    const std::string name = "burst-" + std::to_string(i) + ".zip";
    write_file(incoming_ / (name + ".part"), name);
    fs::rename(incoming_ / (name + ".part"), incoming_ / name);
  }
  ASSERT_TRUE(run_until([&] { return events_.unique.size() == files; }, 120s));
  run_quietly(300ms);
  EXPECT_GE(watcher_->overflow_count(), 1u);
  EXPECT_EQ(events_.unique.size(), files);
  std::cout << "[ real overflow ] " << files << " files, " << watcher_->overflow_count() << " overflow(s), "
            << events_.ready.size() - files << " repeated ready call(s)\n";
  RecordProperty("repeats", static_cast<int>(events_.ready.size() - files));
}

TEST_F(DropWatcherTest, TenThousandFilesRenamedAtOnceAreTenThousandReadyFiles) {
  constexpr int kFiles = 10000;
  const fs::path staging = dir_ / "staging";  // same filesystem, not watched
  fs::create_directories(staging);
  for (int i = 0; i < kFiles; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "m%05d.zip", i);
    write_file(staging / name, name);
  }
  start({watch_config(incoming_)});
  std::atomic<bool> renamed{false};
  const auto began = SteadyClock::now();
  std::thread mover([&] {
    for (const auto& entry : fs::directory_iterator(staging)) {
      fs::rename(entry.path(), incoming_ / entry.path().filename());
    }
    renamed = true;
  });
  const bool all = run_until([&] { return events_.unique.size() == kFiles; }, 120s);
  mover.join();
  ASSERT_TRUE(all) << events_.unique.size();
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - began);
  run_quietly(300ms);
  EXPECT_TRUE(renamed);
  EXPECT_EQ(events_.unique.size(), static_cast<std::size_t>(kFiles));
  EXPECT_EQ(events_.ready.size(), static_cast<std::size_t>(kFiles));  // not even repeats
  EXPECT_EQ(watcher_->settling_count(), 0u);
  std::cout << "[ burst ] " << kFiles << " files reported in " << elapsed.count() << " ms (settle 100ms), "
            << events_.ready.size() - kFiles << " repeated ready call(s), " << watcher_->overflow_count()
            << " overflow(s)\n";
}

// --- recursion, directories, limits ----------------------------------------------------------

TEST_F(DropWatcherTest, ANestedDirectoryCreatedWithAFileInsideIsFound) {
  auto watch = watch_config(incoming_);
  watch.recursive = true;
  TempDir outside;
  const auto source = outside.write("model.zip", std::string(64 * 1024, 'n'));
  outside.write("escape.zip", "x");
  fs::create_directory_symlink(outside.path(), incoming_ / "linked");
  write_file(incoming_ / "placeholder.txt", "x");
  fs::create_directories(incoming_ / "done");
  start({watch});
  const std::size_t watched_before = watcher_->watched_directory_count();
  const fs::path nested = incoming_ / "team" / "run1" / "epoch3";
  const auto shell = test::run_process(
      {"/bin/sh", "-c",
       "mkdir -p '" + nested.string() + "' && cp '" + source.string() + "' '" + nested.string() + "/'"});
  ASSERT_EQ(shell.exit_code, 0) << shell.err;
  ASSERT_TRUE(run_until([&] { return events_.ready_count(nested / "model.zip") == 1; }));
  EXPECT_EQ(events_.last_ready(nested / "model.zip")->size, 64u * 1024);
  EXPECT_EQ(watcher_->watched_directory_count(), watched_before + 3);

  // The new directories are watched: a later file arrives through their events.
  write_file(incoming_ / "team" / "run1" / "second.zip", "2");
  ASSERT_TRUE(run_until([&] { return events_.ready_count(incoming_ / "team/run1/second.zip") == 1; }));
  // The done directory is never watched, symlinks are never followed.
  write_file(incoming_ / "done" / "finished.zip", "x");
  outside.write("late.zip", "x");
  run_quietly(300ms);
  EXPECT_EQ(events_.ready.size(), 2u);

  // A subtree moved away reports its files removed and drops its watches.
  fs::rename(incoming_ / "team", dir_ / "team-elsewhere");
  ASSERT_TRUE(run_until([&] { return events_.was_removed(nested / "model.zip"); }));
  EXPECT_EQ(watcher_->watched_directory_count(), watched_before);
}

TEST_F(DropWatcherTest, OutOfInotifyWatchesFallsBackToPolling) {
  auto watch = watch_config(incoming_);
  watch.recursive = true;
  write_file((fs::create_directories(incoming_ / "sub"), incoming_ / "sub" / "a.zip"), "a");
  auto options = fast_options();
  options.watch_limit_for_test = 1;  // the root gets its watch, "sub" does not
  start({watch}, options);
  EXPECT_EQ(watcher_->mode(0), DropWatcher::Mode::polling);
  ASSERT_TRUE(run_until([&] { return events_.ready_count(incoming_ / "sub/a.zip") == 1; }));
  // No watch on sub: only the periodic scan can find this one.
  write_file(incoming_ / "sub" / "b.zip", "b");
  ASSERT_TRUE(run_until([&] { return events_.ready_count(incoming_ / "sub/b.zip") == 1; }));
  run_quietly(500ms);  // several polls: nothing reported twice
  EXPECT_EQ(events_.ready.size(), 2u);
}

// --- missing directories ---------------------------------------------------------------------

TEST_F(DropWatcherTest, AWatchDirectoryDeletedAndRecreatedIsWatchedAgain) {
  start({watch_config(incoming_)});
  write_file(incoming_ / "first.zip", "1");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 1; }));
  fs::remove_all(incoming_);
  ASSERT_TRUE(run_until([&] { return watcher_->mode(0) == DropWatcher::Mode::missing; }));
  EXPECT_TRUE(events_.was_removed(incoming_ / "first.zip"));
  fs::create_directories(incoming_);
  write_file(incoming_ / "second.zip", "2");
  ASSERT_TRUE(run_until([&] { return events_.ready_count(incoming_ / "second.zip") == 1; }));
  EXPECT_EQ(watcher_->mode(0), DropWatcher::Mode::watching);
  // Events flow again, not only the retry's scan.
  write_file(incoming_ / "third.zip", "3");
  ASSERT_TRUE(run_until([&] { return events_.ready_count(incoming_ / "third.zip") == 1; }));

  // Moved away (IN_MOVE_SELF): what lands in the old inode is not ours any more.
  fs::rename(incoming_, dir_ / "incoming.old");
  ASSERT_TRUE(run_until([&] { return watcher_->mode(0) == DropWatcher::Mode::missing; }));
  write_file(dir_ / "incoming.old" / "stray.zip", "s");
  fs::create_directories(incoming_);
  ASSERT_TRUE(run_until([&] { return watcher_->mode(0) == DropWatcher::Mode::watching; }));
  write_file(incoming_ / "fourth.zip", "4");
  ASSERT_TRUE(run_until([&] { return events_.ready_count(incoming_ / "fourth.zip") == 1; }));
  run_quietly(300ms);
  EXPECT_EQ(events_.ready_count(dir_ / "incoming.old" / "stray.zip"), 0u);
}

TEST_F(DropWatcherTest, AMissingDirectoryDoesNotStopTheOthers) {
  const fs::path absent = dir_ / "absent";
  const fs::path not_a_dir = dir_ / "plain-file";
  write_file(not_a_dir, "x");
  start({watch_config(absent), watch_config(incoming_), watch_config(not_a_dir)});
  EXPECT_EQ(watcher_->mode(0), DropWatcher::Mode::missing);
  EXPECT_EQ(watcher_->mode(1), DropWatcher::Mode::watching);
  EXPECT_EQ(watcher_->mode(2), DropWatcher::Mode::missing);
  write_file(incoming_ / "a.zip", "a");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 1; }));
  fs::create_directories(absent);
  write_file(absent / "b.zip", "b");
  fs::remove(not_a_dir);
  fs::create_directories(not_a_dir);
  write_file(not_a_dir / "c.zip", "c");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 3; }));
  EXPECT_EQ(events_.last_ready(absent / "b.zip")->watch_index, 0u);
  EXPECT_EQ(events_.last_ready(not_a_dir / "c.zip")->watch_index, 2u);
  EXPECT_EQ(watcher_->mode(0), DropWatcher::Mode::watching);
  EXPECT_EQ(watcher_->mode(2), DropWatcher::Mode::watching);
}

// Root reads every directory through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: this thread gives
// them up while it lives (capabilities are per thread), so the test means the same as root.
class WithoutFileAccessOverride {
 public:
  WithoutFileAccessOverride() {
    if (::syscall(SYS_capget, &header_, saved_) != 0) return;
    __user_cap_data_struct reduced[2] = {saved_[0], saved_[1]};
    const unsigned mask = (1U << CAP_DAC_OVERRIDE) | (1U << CAP_DAC_READ_SEARCH);
    reduced[0].effective &= ~mask;
    active_ = ::syscall(SYS_capset, &header_, reduced) == 0;
  }
  ~WithoutFileAccessOverride() {
    if (active_) ::syscall(SYS_capset, &header_, saved_);
  }
  WithoutFileAccessOverride(const WithoutFileAccessOverride&) = delete;
  WithoutFileAccessOverride& operator=(const WithoutFileAccessOverride&) = delete;

 private:
  __user_cap_header_struct header_{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct saved_[2]{};
  bool active_ = false;
};

TEST_F(DropWatcherTest, AnUnreadableDirectoryIsRetried) {
  WithoutFileAccessOverride as_an_ordinary_user;
  ::chmod(incoming_.c_str(), 0);
  start({watch_config(incoming_)});
  EXPECT_EQ(watcher_->mode(0), DropWatcher::Mode::missing);
  ::chmod(incoming_.c_str(), 0755);
  write_file(incoming_ / "a.zip", "a");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 1; }));
}

// --- several entries, reconfiguration, after-actions -----------------------------------------

TEST_F(DropWatcherTest, EachWatchEntryHasItsOwnProjectAndPatterns) {
  const fs::path other = dir_ / "other";
  fs::create_directories(other);
  auto zips = watch_config(incoming_);
  zips.project_id = "project-zip";
  zips.patterns = {"*.zip"};
  auto tars = watch_config(other);
  tars.project_id = "project-tar";
  tars.patterns = {"*.tar"};
  start({zips, tars});
  write_file(incoming_ / "x.zip", "x");
  write_file(incoming_ / "y.tar", "y");
  write_file(other / "z.tar", "z");
  write_file(other / "w.zip", "w");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 2; }));
  run_quietly(300ms);
  ASSERT_EQ(events_.ready.size(), 2u);
  const ReadyFile* x = events_.last_ready(incoming_ / "x.zip");
  const ReadyFile* z = events_.last_ready(other / "z.tar");
  ASSERT_TRUE(x && z);
  EXPECT_EQ(x->watch_index, 0u);
  EXPECT_EQ(x->project_id, std::optional<std::string>("project-zip"));
  EXPECT_EQ(x->watch_dir, incoming_);
  EXPECT_EQ(z->watch_index, 1u);
  EXPECT_EQ(z->project_id, std::optional<std::string>("project-tar"));
  struct stat st {};
  ASSERT_EQ(::stat((other / "z.tar").c_str(), &st), 0);
  EXPECT_EQ(z->inode, st.st_ino);
  EXPECT_EQ(z->device, st.st_dev);
  EXPECT_EQ(z->size, 1u);
  EXPECT_EQ(z->mtime_ns, std::int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec);
}

TEST_F(DropWatcherTest, AnEntryNestedInARecursiveOneOwnsItsDirectory) {
  auto outer = watch_config(incoming_);
  outer.recursive = true;
  outer.project_id = "outer";
  const fs::path team = incoming_ / "team-b";
  fs::create_directories(team);
  auto inner = watch_config(team);
  inner.project_id = "inner";
  start({outer, inner});
  write_file(team / "b.zip", "b");
  write_file(incoming_ / "a.zip", "a");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 2; }));
  watcher_->rescan_all();
  run_quietly(300ms);
  ASSERT_EQ(events_.ready.size(), 2u);
  EXPECT_EQ(events_.last_ready(team / "b.zip")->project_id, std::optional<std::string>("inner"));
  EXPECT_EQ(events_.last_ready(team / "b.zip")->watch_index, 1u);
  EXPECT_EQ(events_.last_ready(incoming_ / "a.zip")->project_id, std::optional<std::string>("outer"));
}

TEST_F(DropWatcherTest, ReconfigureAddsAndDropsWatches) {
  const fs::path other = dir_ / "other";
  fs::create_directories(other);
  write_file(other / "waiting.zip", "w");
  start({watch_config(incoming_)});
  write_file(incoming_ / "a.zip", "a");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 1; }));

  watcher_->reconfigure({watch_config(other), watch_config(incoming_)});
  ASSERT_TRUE(run_until([&] { return events_.ready_count(other / "waiting.zip") == 1; }));
  EXPECT_EQ(events_.last_ready(other / "waiting.zip")->watch_index, 0u);
  write_file(incoming_ / "b.zip", "b");
  ASSERT_TRUE(run_until([&] { return events_.ready_count(incoming_ / "b.zip") == 1; }));
  EXPECT_EQ(events_.last_ready(incoming_ / "b.zip")->watch_index, 1u);
  EXPECT_EQ(events_.ready_count(incoming_ / "a.zip"), 1u);  // kept entry: not reported again

  watcher_->reconfigure({watch_config(other)});
  write_file(incoming_ / "c.zip", "c");
  write_file(other / "d.zip", "d");
  ASSERT_TRUE(run_until([&] { return events_.ready_count(other / "d.zip") == 1; }));
  run_quietly(300ms);
  EXPECT_EQ(events_.ready_count(incoming_ / "c.zip"), 0u);
  EXPECT_EQ(events_.last_ready(other / "d.zip")->watch_index, 0u);
}

TEST_F(DropWatcherTest, ReconfigureChangingOnlyValidateAppliesToTheNextFile) {
  start({watch_config(incoming_)});
  write_file(incoming_ / "a.zip", "a");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 1; }));
  EXPECT_EQ(events_.last_ready(incoming_ / "a.zip")->validate, preflight::ArchiveValidation::archive);
  auto adapter = watch_config(incoming_);
  adapter.validate = preflight::ArchiveValidation::adapter;
  watcher_->reconfigure({adapter});
  write_file(incoming_ / "b.zip", "b");
  ASSERT_TRUE(run_until([&] { return events_.ready_count(incoming_ / "b.zip") == 1; }));
  EXPECT_EQ(events_.last_ready(incoming_ / "b.zip")->validate, preflight::ArchiveValidation::adapter);
}

TEST_F(DropWatcherTest, AfterActionsMoveWithCollisionsAndDeleteWhileWatched) {
  auto watch = watch_config(incoming_, 50ms);
  watch.recursive = true;  // done/ and failed/ sit inside and must still never be reported
  fs::create_directories(incoming_ / "team");
  write_file((fs::create_directories(incoming_ / "done" / "team"), incoming_ / "done" / "team" / "model.zip"),
             "earlier");
  write_file((fs::create_directories(incoming_ / "failed"), incoming_ / "failed" / "bad.tar.gz"), "earlier");
  start({watch});

  write_file(incoming_ / "team" / "model.zip", "succeeded");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 1; }));
  const auto done = apply_success_action(watch, incoming_ / "team" / "model.zip");
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(*done, std::optional<fs::path>(incoming_ / "done" / "team" / "model.1.zip"));
  EXPECT_EQ(test::read_file(incoming_ / "done" / "team" / "model.zip"), "earlier");
  EXPECT_EQ(test::read_file(incoming_ / "done" / "team" / "model.1.zip"), "succeeded");
  ASSERT_TRUE(run_until([&] { return events_.was_removed(incoming_ / "team" / "model.zip"); }));

  write_file(incoming_ / "bad.tar.gz", "failed");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 2; }));
  const auto failed = apply_failure_action(watch, incoming_ / "bad.tar.gz");
  ASSERT_TRUE(failed) << failed.error().message;
  EXPECT_EQ(*failed, std::optional<fs::path>(incoming_ / "failed" / "bad.1.tar.gz"));

  watch.on_success = config::SuccessAction::remove;
  write_file(incoming_ / "gone.zip", "deleted");
  ASSERT_TRUE(run_until([&] { return events_.ready.size() == 3; }));
  EXPECT_EQ(apply_success_action(watch, incoming_ / "gone.zip").value(), std::optional<fs::path>());
  EXPECT_FALSE(fs::exists(incoming_ / "gone.zip"));
  ASSERT_TRUE(run_until([&] { return events_.was_removed(incoming_ / "gone.zip"); }));

  run_quietly(300ms);
  EXPECT_EQ(events_.ready.size(), 3u);  // nothing from done/ or failed/
}

}  // namespace
}  // namespace modeldrop::watch
