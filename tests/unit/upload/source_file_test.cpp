// The descriptor an attempt reads from: O_NOFOLLOW, the queued device and inode, size and
// mtime before and after (docs/http.md).
#include "upload/source_file.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/time.h>
#include <fstream>

namespace modeldrop::upload {
namespace {

using test::TempDir;

FileIdentity identity(const std::filesystem::path& path) {
  auto id = identify_file(path);
  EXPECT_TRUE(id) << (id ? "" : id.error().message);
  return id ? *id : FileIdentity{};
}

std::string read_all(SourceFile& file, std::size_t chunk) {
  std::string out;
  std::vector<std::byte> buffer(chunk);
  for (int i = 0; i < 10000 && file.remaining() > 0; ++i) {
    auto n = file.read(buffer);
    EXPECT_TRUE(n);
    if (!n) break;
    out.append(reinterpret_cast<const char*>(buffer.data()), *n);
  }
  return out;
}

void set_mtime(const std::filesystem::path& path, long seconds) {
  const struct timeval times[2] = {{seconds, 0}, {seconds, 0}};
  ASSERT_EQ(::utimes(path.c_str(), times), 0);
}

TEST(SourceFile, ReadsExactlyTheQueuedBytes) {
  TempDir dir;
  const auto path = dir.write("a.zip", "0123456789");
  const FileIdentity expected = identity(path);
  EXPECT_EQ(expected.size, 10U);
  auto file = SourceFile::open(path, expected);
  ASSERT_TRUE(file);
  EXPECT_EQ(read_all(*file, 3), "0123456789");
  FileIdentity after;
  EXPECT_TRUE(file->check_unchanged(after));
  EXPECT_EQ(after, expected);
}

TEST(SourceFile, SymlinkIsRefusedEvenToTheSameFile) {
  TempDir dir;
  const auto real = dir.write("real.zip", "data");
  const FileIdentity expected = identity(real);
  const auto link = dir / "link.zip";
  std::filesystem::create_symlink(real, link);
  auto file = SourceFile::open(link, expected);
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().error, AttemptError::file_replaced);
  EXPECT_NE(file.error().message.find("symbolic link"), std::string::npos);
  EXPECT_EQ(identify_file(link).error().error, AttemptError::file_replaced);
}

TEST(SourceFile, AnotherInodeAtThePathIsRefused) {
  TempDir dir;
  const auto path = dir.write("a.zip", "data");
  const FileIdentity expected = identity(path);
  const auto other = dir.write("b.zip", "data");
  set_mtime(other, expected.mtime_ns / 1'000'000'000);
  std::filesystem::rename(other, path);  // same name, size and content; a different file
  auto file = SourceFile::open(path, expected);
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().error, AttemptError::file_replaced);
}

TEST(SourceFile, MissingNotRegularAndUnreadable) {
  TempDir dir;
  EXPECT_EQ(SourceFile::open(dir / "none.zip", {}).error().error, AttemptError::file_missing);
  EXPECT_EQ(identify_file(dir / "none.zip").error().error, AttemptError::file_missing);

  const auto fifo = dir / "fifo.zip";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(SourceFile::open(fifo, {}).error().error, AttemptError::file_not_regular) << "and open() did not block";
  EXPECT_EQ(SourceFile::open(dir.path(), {}).error().error, AttemptError::file_not_regular);

  if (::geteuid() != 0) {  // root reads anything
    const auto secret = dir.write("secret.zip", "x", 0000);
    EXPECT_EQ(SourceFile::open(secret, identity(secret)).error().error, AttemptError::file_unreadable);
  }
}

TEST(SourceFile, ChangedSinceQueuedIsRefused) {
  TempDir dir;
  const auto path = dir.write("a.zip", "data");
  FileIdentity expected = identity(path);
  expected.size = 3;
  EXPECT_EQ(SourceFile::open(path, expected).error().error, AttemptError::file_changed);
  expected = identity(path);
  expected.mtime_ns -= 1;
  auto changed = SourceFile::open(path, expected);
  ASSERT_FALSE(changed);
  EXPECT_EQ(changed.error().error, AttemptError::file_changed);
  EXPECT_NE(changed.error().message.find("modification time"), std::string::npos);
}

TEST(SourceFile, GrowingWhileReadIsReportedAfterwards) {
  TempDir dir;
  const auto path = dir.write("a.zip", "0123456789");
  const FileIdentity expected = identity(path);
  auto file = SourceFile::open(path, expected);
  ASSERT_TRUE(file);
  {
    std::ofstream append(path, std::ios::app);
    append << "more";
  }
  EXPECT_EQ(read_all(*file, 4), "0123456789") << "never past the queued size";
  FileIdentity after;
  auto unchanged = file->check_unchanged(after);
  ASSERT_FALSE(unchanged);
  EXPECT_EQ(unchanged.error().error, AttemptError::file_changed);
  EXPECT_EQ(after.size, 14U);
}

TEST(SourceFile, ShrinkingWhileReadIsFileChanged) {
  TempDir dir;
  const auto path = dir.write("a.zip", "0123456789");
  auto file = SourceFile::open(path, identity(path));
  ASSERT_TRUE(file);
  std::filesystem::resize_file(path, 4);
  std::vector<std::byte> buffer(16);
  auto first = file->read(buffer);
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, 4U);
  auto second = file->read(buffer);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().error, AttemptError::file_changed);
}

TEST(Sha256, KnownDigests) {
  Sha256 empty;
  EXPECT_EQ(empty.hex_digest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 abc;
  const std::string a = "a";
  const std::string bc = "bc";
  abc.update(std::as_bytes(std::span(a)));
  abc.update(std::as_bytes(std::span(bc)));
  EXPECT_EQ(abc.hex_digest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace modeldrop::upload
