#include "watch/after_action.hpp"

#include "common/text.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <cstdlib>
#include <fstream>

namespace modeldrop::watch {
namespace {

namespace fs = std::filesystem;
using test::read_file;
using test::TempDir;

// The done directory already holds a 255-byte name: "<stem>.1.zip" would be 257 bytes, which
// rename(2) refuses (ENAMETOOLONG), and the archive would stay in the drop directory.
TEST(AfterAction, NumberedNamesOfTheLongestNamesStillFitNameMax) {
  const std::string longest = std::string(251, 'n') + ".zip";
  EXPECT_EQ(numbered_name(longest, 1), std::string(249, 'n') + ".1.zip");
  EXPECT_EQ(numbered_name(longest, 12345), std::string(245, 'n') + ".12345.zip");
  // The cut never splits a UTF-8 sequence: 83 three-byte characters and ".zip" (253 bytes) leave
  // 248 bytes for the stem with ".10", which falls inside the 83rd character.
  std::string wide;
  for (int i = 0; i < 82; ++i) wide += "\xE2\x82\xAC";  // U+20AC
  const std::string wide_name = wide + "\xE2\x82\xAC.zip";
  ASSERT_EQ(wide_name.size(), 253u);
  EXPECT_EQ(numbered_name(wide_name, 10), wide + ".10.zip");
}

TEST(AfterAction, NumberedNamesGoBeforeTheArchiveExtension) {
  EXPECT_EQ(numbered_name("model.tar.gz", 0), "model.tar.gz");
  EXPECT_EQ(numbered_name("model.tar.gz", 1), "model.1.tar.gz");
  EXPECT_EQ(numbered_name("model.TAR.GZ", 2), "model.2.TAR.GZ");
  EXPECT_EQ(numbered_name("model.tgz", 3), "model.3.tgz");
  EXPECT_EQ(numbered_name("v1.2.zip", 1), "v1.2.1.zip");
  EXPECT_EQ(numbered_name("weights.tar", 10), "weights.10.tar");
  EXPECT_EQ(numbered_name("weights.bin", 1), "weights.1.bin");
  EXPECT_EQ(numbered_name("README", 1), "README.1");
  EXPECT_EQ(archive_extension("archive.gz"), ".gz");
  EXPECT_EQ(archive_extension(".zip"), "");
}

TEST(AfterAction, TargetDirectoryKeepsSubfolders) {
  EXPECT_EQ(target_directory("/in/a.zip", "/in", "/in/done"), fs::path("/in/done"));
  EXPECT_EQ(target_directory("/in/team/run1/a.zip", "/in", "/in/done"), fs::path("/in/done/team/run1"));
  EXPECT_EQ(target_directory("/elsewhere/a.zip", "/in", "/archive"), fs::path("/archive"));
}

TEST(AfterAction, MoveCreatesTheDirectoryAndNumbersCollisions) {
  TempDir dir;
  const auto first = dir.write("in/model.tar.gz", "first");
  const auto moved = move_into(first, dir / "done/sub");
  ASSERT_TRUE(moved) << moved.error().message;
  EXPECT_EQ(*moved, dir / "done/sub/model.tar.gz");
  EXPECT_FALSE(fs::exists(first));

  const auto second = dir.write("in/model.tar.gz", "second");
  const auto third = dir.write("in2/model.tar.gz", "third");
  ASSERT_EQ(move_into(second, dir / "done/sub").value(), dir / "done/sub/model.1.tar.gz");
  ASSERT_EQ(move_into(third, dir / "done/sub").value(), dir / "done/sub/model.2.tar.gz");
  EXPECT_EQ(read_file(dir / "done/sub/model.tar.gz"), "first");
  EXPECT_EQ(read_file(dir / "done/sub/model.1.tar.gz"), "second");
  EXPECT_EQ(read_file(dir / "done/sub/model.2.tar.gz"), "third");
}

TEST(AfterAction, ANameTakenByADirectoryIsSkippedNotReplaced) {
  TempDir dir;
  fs::create_directories(dir / "done/model.zip");
  const auto file = dir.write("model.zip", "x");
  EXPECT_EQ(move_into(file, dir / "done").value(), dir / "done/model.1.zip");
  EXPECT_TRUE(fs::is_directory(dir / "done/model.zip"));
}

TEST(AfterAction, MoveOfAMissingFileIsAClearError) {
  TempDir dir;
  const auto result = move_into(dir / "gone.zip", dir / "done");
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("gone.zip"), std::string::npos);
}

// /dev/shm is tmpfs on these machines; $TMPDIR is usually elsewhere: a real EXDEV.
TEST(AfterAction, MoveAcrossFilesystemsCopiesKeepsTimesAndNeverOverwrites) {
  TempDir source;
  const char* shm = "/dev/shm";
  struct stat a {
  }, b{};
  if (::stat(shm, &b) != 0 || ::stat(source.path().c_str(), &a) != 0 || a.st_dev == b.st_dev) {
    GTEST_SKIP() << "needs /dev/shm on another filesystem than " << source.path();
  }
  std::string pattern = std::string(shm) + "/modeldrop-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path target = pattern;
  const std::string content(3 * 1024 * 1024 + 17, 'z');
  const auto file = source.write("sub/model.zip", content, 0640);
  const auto mtime = fs::last_write_time(file) - std::chrono::hours(5);
  fs::last_write_time(file, mtime);
  fs::create_directories(target / "done");
  {
    std::ofstream taken(target / "done/model.zip");
    taken << "taken";
  }
  const auto moved = move_into(file, target / "done");
  ASSERT_TRUE(moved) << moved.error().message;
  EXPECT_EQ(*moved, target / "done/model.1.zip");
  EXPECT_FALSE(fs::exists(file));
  EXPECT_EQ(read_file(*moved), content);
  EXPECT_EQ(read_file(target / "done/model.zip"), "taken");
  EXPECT_EQ(fs::last_write_time(*moved), mtime);
  EXPECT_EQ(fs::status(*moved).permissions() & fs::perms::all, fs::perms(0640));
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(target / "done")) ++entries;
  EXPECT_EQ(entries, 2u);  // no temporary file left behind
  fs::remove_all(target);
}

// Bytes a process has written so far (/proc/<pid>/io), 0 when unknown.
std::uint64_t bytes_written_by(pid_t pid) {
  std::ifstream io("/proc/" + std::to_string(pid) + "/io");
  std::string key;
  std::uint64_t value = 0;
  while (io >> key >> value) {
    if (key == "wchar:") return value;
  }
  return 0;
}

// Found by the soak (tests/soak): a daemon killed while it copied an archive to a done directory
// on another filesystem left a dot-named partial copy there for good. The copy is now unnamed
// until complete.
TEST(AfterAction, MoveAcrossFilesystemsKilledMidCopyLeavesNothingInTheTarget) {
  TempDir target;
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat("/dev/shm", &b), 0);
  ASSERT_EQ(::stat(target.path().c_str(), &a), 0);
  ASSERT_NE(a.st_dev, b.st_dev) << "needs /dev/shm (tmpfs) on another filesystem than " << target.path();
  std::string pattern = "/dev/shm/modeldrop-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path source_dir = pattern;
  // Sparse: costs no memory in the tmpfs, yet takes a while to copy (zeros are written out).
  const fs::path file = source_dir / "big.tar";
  { std::ofstream(file).put('x'); }
  fs::resize_file(file, std::uint64_t{8} << 30);

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    (void)move_into(file, target / "done");
    ::_exit(0);
  }
  // Killed once a good part of the copy is written, certainly before it completes.
  bool copying = false;
  for (int i = 0; i < 20000 && !copying; ++i) {
    copying = bytes_written_by(child) >= (std::uint64_t{64} << 20);
    if (!copying) ::usleep(1000);
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(copying) << "the copy never got going";
  ASSERT_TRUE(WIFSIGNALED(status)) << "the 8 GiB copy finished before the kill";
  EXPECT_TRUE(fs::exists(file)) << "killed mid-copy: the source stays";
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(target / "done")) left.push_back(entry.path().filename().string());
  EXPECT_TRUE(left.empty()) << "left behind: " << (left.empty() ? "" : left.front());
  fs::remove_all(source_dir);
}

// Found by the soak: killed after the copy was named in the done directory but before the
// original was removed, the restart moved the original again, as done/name.1.tar. A copy with
// the original's size, mtime and bytes is now taken as that earlier move, finished.
TEST(AfterAction, MoveAcrossFilesystemsFinishesAMoveACrashInterrupted) {
  TempDir target;
  std::string pattern = "/dev/shm/modeldrop-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path source_dir = pattern;
  const auto write = [](const fs::path& path, const std::string& content, fs::file_time_type mtime) {
    std::ofstream(path, std::ios::binary) << content;
    fs::last_write_time(path, mtime);
  };
  const auto mtime = fs::file_time_type::clock::now() - std::chrono::hours(1);
  const std::string content(3 * 1024 * 1024 + 5, 'q');
  fs::create_directories(target / "done");
  write(source_dir / "model.tar", content, mtime);
  write(target / "done/model.tar", "another archive, same name", mtime);
  write(target / "done/model.1.tar", content, mtime);  // what the interrupted move had copied

  const auto moved = move_into(source_dir / "model.tar", target / "done");
  ASSERT_TRUE(moved) << moved.error().message;
  EXPECT_EQ(*moved, target / "done/model.1.tar");
  EXPECT_FALSE(fs::exists(source_dir / "model.tar"));
  EXPECT_FALSE(fs::exists(target / "done/model.2.tar")) << "no second copy";

  // Same size and mtime but other bytes is another file: copied under a free name.
  std::string other = content;
  other[content.size() / 2] = 'r';
  write(source_dir / "model.tar", other, mtime);
  const auto second = move_into(source_dir / "model.tar", target / "done");
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(*second, target / "done/model.2.tar");
  EXPECT_EQ(read_file(target / "done/model.2.tar"), other);
  EXPECT_EQ(read_file(target / "done/model.1.tar"), content);
  fs::remove_all(source_dir);
}

TEST(AfterAction, RemoveFileAndAlreadyGone) {
  TempDir dir;
  const auto file = dir.write("a.zip", "x");
  EXPECT_TRUE(remove_file(file));
  EXPECT_FALSE(fs::exists(file));
  EXPECT_TRUE(remove_file(file));
  fs::create_directory(dir / "d.zip");
  EXPECT_FALSE(remove_file(dir / "d.zip"));
}

config::WatchConfig watch_of(const TempDir& dir) {
  config::WatchConfig watch;
  watch.path = dir / "in";
  watch.done_dir = dir / "in/done";
  watch.failed_dir = dir / "in/failed";
  return watch;
}

TEST(AfterAction, WatchActionsReturnTheNewCurrentPath) {
  TempDir dir;
  auto watch = watch_of(dir);
  const auto a = dir.write("in/team/a.zip", "a");
  EXPECT_EQ(apply_success_action(watch, a).value(), std::optional<fs::path>(dir / "in/done/team/a.zip"));
  const auto b = dir.write("in/b.zip", "b");
  EXPECT_EQ(apply_failure_action(watch, b).value(), std::optional<fs::path>(dir / "in/failed/b.zip"));

  watch.on_success = config::SuccessAction::keep;
  watch.on_failure = config::FailureAction::keep;
  const auto c = dir.write("in/c.zip", "c");
  EXPECT_EQ(apply_success_action(watch, c).value(), std::optional<fs::path>(c));
  EXPECT_EQ(apply_failure_action(watch, c).value(), std::optional<fs::path>(c));
  EXPECT_TRUE(fs::exists(c));

  watch.on_success = config::SuccessAction::remove;
  EXPECT_EQ(apply_success_action(watch, c).value(), std::optional<fs::path>());
  EXPECT_FALSE(fs::exists(c));
}

}  // namespace
}  // namespace modeldrop::watch
