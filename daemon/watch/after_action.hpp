#pragma once

#include "common/error.hpp"
#include "config/config.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace modeldrop::watch {

// docs/configuration.md: "model.tar.gz" with n = 2 is "model.2.tar.gz"; n = 0 is the name itself. A
// numbered name never exceeds NAME_MAX (255 bytes): a long stem is cut short to fit.
std::string numbered_name(std::string_view name, unsigned n);

// Where a file found at `file` in `watch_dir` goes under `target_root` (done_dir or
// failed_dir): subfolders of the watch directory are kept.
std::filesystem::path target_directory(const std::filesystem::path& file, const std::filesystem::path& watch_dir,
                                       const std::filesystem::path& target_root);

// Moves `file` into `dir` (created as needed) under its own name, or the first free numbered
// name: never overwrites, even against a concurrent writer (renameat2 RENAME_NOREPLACE, or
// link + unlink). Across filesystems: copy to a temporary name, fsync, rename into place,
// fsync the directory, then remove the source. Returns the new path.
Result<std::filesystem::path> move_into(const std::filesystem::path& file, const std::filesystem::path& dir);

// Unlinks `file`; a file already gone counts as removed.
Result<void> remove_file(const std::filesystem::path& file);

// The watch entry's on_success / on_failure for a job's file (docs/configuration.md). The result is the
// file's new current_path: unchanged for keep, the new path for move, nullopt once deleted.
Result<std::optional<std::filesystem::path>> apply_success_action(const config::WatchConfig& watch,
                                                                  const std::filesystem::path& file);
Result<std::optional<std::filesystem::path>> apply_failure_action(const config::WatchConfig& watch,
                                                                  const std::filesystem::path& file);

}  // namespace modeldrop::watch
