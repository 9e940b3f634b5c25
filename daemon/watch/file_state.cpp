#include "watch/file_state.hpp"

namespace modeldrop::watch {
namespace {

std::int64_t nanoseconds(const struct timespec& ts) {
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<std::int64_t>(ts.tv_nsec);
}

}  // namespace

FileState file_state_of(const struct stat& st) {
  return FileState{st.st_dev, st.st_ino, static_cast<std::uint64_t>(st.st_size), nanoseconds(st.st_mtim),
                   nanoseconds(st.st_ctim)};
}

FileKind file_kind_of(mode_t mode) {
  if (S_ISREG(mode)) return FileKind::regular;
  if (S_ISDIR(mode)) return FileKind::directory;
  if (S_ISLNK(mode)) return FileKind::symlink;
  if (S_ISFIFO(mode)) return FileKind::fifo;
  if (S_ISSOCK(mode)) return FileKind::socket;
  if (S_ISCHR(mode)) return FileKind::character_device;
  if (S_ISBLK(mode)) return FileKind::block_device;
  return FileKind::other;
}

std::string_view to_string(FileKind kind) {
  switch (kind) {
    case FileKind::regular:
      return "regular file";
    case FileKind::directory:
      return "directory";
    case FileKind::symlink:
      return "symlink";
    case FileKind::fifo:
      return "FIFO";
    case FileKind::socket:
      return "socket";
    case FileKind::character_device:
      return "character device";
    case FileKind::block_device:
      return "block device";
    case FileKind::other:
      break;
  }
  return "special file";
}

}  // namespace modeldrop::watch
