#include "watch/directory_scanner.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <algorithm>
#include <set>

namespace modeldrop::watch {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

class Recorder final : public ScanVisitor {
 public:
  bool enter_directory(const fs::path& dir) override {
    entered.insert(dir.string());
    return skip.count(dir.string()) == 0;
  }
  void found_file(const fs::path& file, const FileState& state) override {
    files.insert(file.string());
    sizes.push_back(state.size);
  }
  void found_special(const fs::path& entry, FileKind kind) override { special.emplace(entry.string(), kind); }
  void entry_error(const fs::path& entry, const Error& /*error*/) override { errors.insert(entry.string()); }

  std::set<std::string> entered, files, errors, skip;
  std::set<std::pair<std::string, FileKind>> special;
  std::vector<std::uint64_t> sizes;
};

const NameFilter kFilter({"*.zip", "*.tar.gz"});

TEST(DirectoryScanner, NonRecursiveListsOnlyMatchingRegularFiles) {
  TempDir dir;
  dir.write("a.zip", "12345");
  dir.write("b.TAR.GZ", "x");
  dir.write("notes.txt", "x");
  dir.write("c.zip.part", "x");
  dir.write(".d.zip", "x");
  dir.write("sub/e.zip", "x");
  fs::create_directory(dir / "folder.zip");
  Recorder recorder;
  ASSERT_TRUE(scan_directory(dir.path(), ScanOptions{kFilter, false, {}}, recorder));
  EXPECT_EQ(recorder.files, (std::set<std::string>{(dir / "a.zip").string(), (dir / "b.TAR.GZ").string()}));
  EXPECT_EQ(recorder.entered, std::set<std::string>{dir.path().string()});
  EXPECT_EQ(recorder.special,
            (std::set<std::pair<std::string, FileKind>>{{(dir / "folder.zip").string(), FileKind::directory}}));
  EXPECT_NE(std::find(recorder.sizes.begin(), recorder.sizes.end(), 5u), recorder.sizes.end());
}

TEST(DirectoryScanner, RecursiveSkipsExcludedDirectoriesAndNeverFollowsSymlinks) {
  TempDir dir;
  TempDir outside;
  outside.write("secret.zip", "x");
  dir.write("a/b/c/deep.zip", "x");
  dir.write("done/finished.zip", "x");
  dir.write("failed/x/broken.zip", "x");
  fs::create_directory_symlink(outside.path(), dir / "linked");
  fs::create_directory_symlink(outside.path(), dir / "linked.zip");
  fs::create_symlink(outside / "secret.zip", dir / "pointer.zip");
  ASSERT_EQ(::mkfifo((dir / "pipe.zip").c_str(), 0600), 0);
  const std::vector<fs::path> excluded{dir / "done", dir / "failed"};
  Recorder recorder;
  ASSERT_TRUE(scan_directory(dir.path(), ScanOptions{kFilter, true, excluded}, recorder));
  EXPECT_EQ(recorder.files, std::set<std::string>{(dir / "a/b/c/deep.zip").string()});
  EXPECT_EQ(recorder.entered.count((dir / "done").string()), 0u);
  EXPECT_EQ(recorder.entered.count((dir / "linked").string()), 0u);
  EXPECT_EQ(recorder.entered.count((dir / "a/b/c").string()), 1u);
  const std::set<std::pair<std::string, FileKind>> expected_special{{(dir / "linked.zip").string(), FileKind::symlink},
                                                                    {(dir / "pointer.zip").string(), FileKind::symlink},
                                                                    {(dir / "pipe.zip").string(), FileKind::fifo}};
  EXPECT_EQ(recorder.special, expected_special);
}

TEST(DirectoryScanner, EnterDirectoryComesBeforeItsFilesAndCanSkip) {
  TempDir dir;
  dir.write("keep/a.zip", "x");
  dir.write("skip/b.zip", "x");
  Recorder recorder;
  recorder.skip.insert((dir / "skip").string());
  ASSERT_TRUE(scan_directory(dir.path(), ScanOptions{kFilter, true, {}}, recorder));
  EXPECT_EQ(recorder.files, std::set<std::string>{(dir / "keep/a.zip").string()});
}

TEST(DirectoryScanner, AMissingStartIsAnError) {
  TempDir dir;
  Recorder recorder;
  const auto result = scan_directory(dir / "absent", ScanOptions{kFilter, true, {}}, recorder);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("absent"), std::string::npos);
}

TEST(DirectoryScanner, AConfiguredSymlinkedStartIsFollowed) {
  TempDir real;
  TempDir links;
  real.write("a.zip", "x");
  fs::create_directory_symlink(real.path(), links / "incoming");
  Recorder recorder;
  ASSERT_TRUE(scan_directory(links / "incoming", ScanOptions{kFilter, false, {}}, recorder));
  EXPECT_EQ(recorder.files, std::set<std::string>{(links / "incoming" / "a.zip").string()});
}

}  // namespace
}  // namespace modeldrop::watch
