#pragma once

#include "common/duration.hpp"
#include "config/config.hpp"

#include <sys/types.h>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace modeldrop::watch {

// A complete archive, ready to be queued.
struct ReadyFile {
  std::filesystem::path path;   // absolute
  std::size_t watch_index = 0;  // index into the current watch list
  std::filesystem::path watch_dir;
  std::optional<std::string> project_id;  // from the WatchConfig (already resolved)
  dev_t device = 0;
  ino_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  // The marker that made it ready (the watch's ready_marker), which leaves with its job.
  std::optional<std::filesystem::path> ready_marker;
  preflight::ArchiveValidation validate = preflight::ArchiveValidation::archive;  // the watch's `validate`
  std::optional<config::RegisterConfig> registration;                             // the watch's `register`
  std::optional<std::string> token_file;  // the watch's `token_file`; none: the global token
};

// Where the watcher's findings go (the daemon connects it to the job store). Called on the
// event-loop thread; a receiver must not call back into the DropWatcher from inside a call
// (post to the loop instead).
class WatchEvents {
 public:
  virtual ~WatchEvents() = default;
  // May repeat for the same file (startup, reconfigure, a change that restored the same
  // state): the receiver is idempotent (the same-file rule of docs/database.md).
  virtual void file_ready(const ReadyFile& file) = 0;
  // A matching name was deleted or moved away (whether or not it was reported).
  virtual void file_removed(const std::filesystem::path& path) = 0;
  // A file already reported is being written again: it will be reported again once it settles.
  // A receiver may hold the file's pending job meanwhile.
  virtual void file_changing(const std::filesystem::path& /*path*/) {}
  // A full scan of one watch directory ended (startup, rescan, retry, polling).
  virtual void rescan_finished(std::size_t /*watch_index*/) {}
};

struct DropWatcherOptions {
  // Catches what any event source missed.
  Duration safety_rescan_interval = std::chrono::minutes(10);
  // A missing or unreadable watch directory is retried, and a directory without inotify
  // watches (fs.inotify.max_user_watches reached) is scanned, this often.
  Duration retry_interval = std::chrono::seconds(5);
  // `poll: auto` rescans a directory on a network or FUSE filesystem this often.
  Duration network_poll_interval = std::chrono::seconds(10);
  // Tests: inotify_add_watch fails with ENOSPC once this many directories are watched (0 = off).
  std::size_t watch_limit_for_test = 0;
};

// Watches the drop directories (docs/configuration.md, docs/http.md and docs/files.md) and reports every complete
// archive once it has settled. Everything runs on the io_context's thread; the only blocking work is stat and readdir
// of the watched directories.
class DropWatcher {
 public:
  enum class Mode {
    watching,  // inotify watches in place
    polling,   // out of inotify watches: scanned every retry_interval
    missing,   // missing, deleted or unreadable: retried every retry_interval
  };

  DropWatcher(boost::asio::io_context& io, std::vector<config::WatchConfig> watches, WatchEvents& events,
              DropWatcherOptions options = {});
  ~DropWatcher();
  DropWatcher(const DropWatcher&) = delete;
  DropWatcher& operator=(const DropWatcher&) = delete;

  // Adds every watch first, then scans every directory (docs/files.md: nothing slips between).
  void start();
  // Removes every watch and timer; nothing is reported afterwards.
  void stop();
  // SIGHUP: entries whose settings did not change keep their state; others are dropped or
  // added (and scanned).
  void reconfigure(std::vector<config::WatchConfig> watches);
  // Scans every watch directory again (what an IN_Q_OVERFLOW triggers).
  void rescan_all();
  // Tests: discards every event queued so far, as a real overflow would, then handles the
  // IN_Q_OVERFLOW record through the same path as one read from the kernel.
  void simulate_queue_overflow_for_test();

  [[nodiscard]] Mode mode(std::size_t watch_index) const;
  [[nodiscard]] std::size_t settling_count() const;
  [[nodiscard]] std::size_t watched_directory_count() const;
  // Event-queue overflows handled so far (each one triggered a full rescan).
  [[nodiscard]] std::size_t overflow_count() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

std::string_view to_string(DropWatcher::Mode mode);

}  // namespace modeldrop::watch
