#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <cstdint>
#include <string_view>

namespace modeldrop::watch {

// What stat says about a file, reduced to what decides "same file" and "still being written"
// (`settle` in docs/configuration.md, the same-file rule in docs/database.md).
struct FileState {
  dev_t device = 0;
  ino_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;

  bool operator==(const FileState&) const = default;
};

enum class FileKind { regular, directory, symlink, fifo, socket, character_device, block_device, other };

FileState file_state_of(const struct stat& st);
FileKind file_kind_of(mode_t mode);
std::string_view to_string(FileKind kind);

}  // namespace modeldrop::watch
