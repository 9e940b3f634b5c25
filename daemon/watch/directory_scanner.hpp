#pragma once

#include "common/error.hpp"
#include "watch/file_state.hpp"
#include "watch/name_filter.hpp"

#include <filesystem>
#include <span>

namespace modeldrop::watch {

// What a scan finds, in the order it finds it. Everything is called on the scanning thread.
class ScanVisitor {
 public:
  virtual ~ScanVisitor() = default;
  // Called before a directory's entries are read, so a watch added here cannot miss a file
  // created after the listing (docs/files.md). False skips the directory.
  virtual bool enter_directory(const std::filesystem::path& dir) = 0;
  // A regular file whose name the filter accepts.
  virtual void found_file(const std::filesystem::path& file, const FileState& state) = 0;
  // A name the filter accepts that is not a regular file (symlink, FIFO, device, directory
  // in a non-recursive scan): never queued.
  virtual void found_special(const std::filesystem::path& entry, FileKind kind) = 0;
  // A subdirectory that cannot be listed or an entry that cannot be examined.
  virtual void entry_error(const std::filesystem::path& entry, const Error& error) = 0;
};

struct ScanOptions {
  const NameFilter& filter;
  bool recursive = false;
  // Never entered (done_dir, failed_dir, other watch entries' directories).
  std::span<const std::filesystem::path> excluded;
};

// Lists `start` (and its subdirectories when recursive) without following symlinks below it.
// Only names the filter accepts are stat'ed. Fails only when `start` itself cannot be listed.
Result<void> scan_directory(const std::filesystem::path& start, const ScanOptions& options, ScanVisitor& visitor);

}  // namespace modeldrop::watch
