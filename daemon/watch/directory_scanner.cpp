#include "watch/directory_scanner.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace modeldrop::watch {
namespace {

namespace fs = std::filesystem;

bool is_excluded(const fs::path& dir, std::span<const fs::path> excluded) {
  return std::find(excluded.begin(), excluded.end(), dir) != excluded.end();
}

class DirectoryListing {
 public:
  explicit DirectoryListing(DIR* dir) : dir_(dir) {}
  ~DirectoryListing() {
    if (dir_ != nullptr) ::closedir(dir_);
  }
  DirectoryListing(const DirectoryListing&) = delete;
  DirectoryListing& operator=(const DirectoryListing&) = delete;
  [[nodiscard]] DIR* get() const { return dir_; }

 private:
  DIR* dir_;
};

}  // namespace

Result<void> scan_directory(const fs::path& start, const ScanOptions& options, ScanVisitor& visitor) {
  std::vector<fs::path> pending{start};
  while (!pending.empty()) {
    const fs::path dir = std::move(pending.back());
    pending.pop_back();
    if (!visitor.enter_directory(dir)) continue;
    // The start may be a configured symlink; below it, O_NOFOLLOW keeps the scan inside.
    const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (dir == start ? 0 : O_NOFOLLOW);
    const int fd = ::open(dir.c_str(), flags);
    DirectoryListing listing(fd < 0 ? nullptr : ::fdopendir(fd));
    if (listing.get() == nullptr) {
      const int error = errno;
      if (fd >= 0) ::close(fd);
      auto failure = errno_error("cannot list " + dir.string(), error);
      if (dir == start) return failure;
      visitor.entry_error(dir, failure);
      continue;
    }
    const int dir_fd = ::dirfd(listing.get());
    int read_error = 0;
    for (;;) {
      errno = 0;  // readdir signals an error only through errno
      const dirent* entry = ::readdir(listing.get());
      if (entry == nullptr) {
        read_error = errno;
        break;
      }
      const std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      unsigned char type = entry->d_type;
      const bool wanted = options.filter.accepts(name);
      if (type == DT_UNKNOWN && (wanted || options.recursive)) {
        struct stat st {};
        if (::fstatat(dir_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
        type = S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;  // refined below for anything but a directory
      }
      fs::path child = dir / name;
      if (type == DT_DIR) {
        if (options.recursive) {
          if (!is_excluded(child, options.excluded)) pending.push_back(std::move(child));
        } else if (wanted) {
          visitor.found_special(child, FileKind::directory);
        }
        continue;
      }
      if (!wanted) continue;
      struct stat st {};
      if (::fstatat(dir_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        const int error = errno;
        if (error != ENOENT) visitor.entry_error(child, errno_error("cannot examine " + child.string(), error));
        continue;
      }
      const FileKind kind = file_kind_of(st.st_mode);
      if (kind == FileKind::regular) {
        visitor.found_file(child, file_state_of(st));
      } else if (kind == FileKind::directory) {
        // Replaced by a directory between readdir and stat: list it next time.
        if (options.recursive && !is_excluded(child, options.excluded)) pending.push_back(std::move(child));
      } else {
        visitor.found_special(child, kind);
      }
    }
    if (read_error != 0) visitor.entry_error(dir, errno_error("cannot list " + dir.string(), read_error));
  }
  return {};
}

}  // namespace modeldrop::watch
