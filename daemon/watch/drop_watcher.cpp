#include "watch/drop_watcher.hpp"

#include "watch/directory_scanner.hpp"
#include "watch/filesystem_kind.hpp"
#include "watch/inotify_events.hpp"
#include "watch/log_limiter.hpp"
#include "watch/name_filter.hpp"
#include "watch/settle_tracker.hpp"

#include <spdlog/spdlog.h>
// GCC 12 at -O2 sees a "potential null pointer dereference" inside Asio's executor comparison
// (a false positive in io_context.hpp, not in this file).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#pragma GCC diagnostic pop

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <unordered_map>
#include <unordered_set>

namespace modeldrop::watch {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using Activity = SettleTracker::Activity;

// IN_EXCL_UNLINK: a file unlinked while open stops producing events; IN_ONLYDIR: a watch
// path replaced by a file fails instead of watching the file.
// IN_ATTRIB: an mtime set after the last write (cp -p, touch) changes the file's identity
// (docs/http.md), so a reported file is settled and reported again.
constexpr std::uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY | IN_CREATE | IN_ATTRIB | IN_DELETE |
                                     IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK;

// Holds a burst of events in few reads; far above the sizeof(inotify_event) + NAME_MAX + 1 minimum.
constexpr std::size_t kReadBufferBytes = 256 * 1024;

constexpr auto kRepeatedWarningInterval = std::chrono::minutes(1);

// Names logged as matching no pattern; past this the memory starts afresh (a name may be logged again).
constexpr std::size_t kUnmatchedNamesRemembered = 4096;

std::string normalized(const fs::path& path) {
  std::string text = path.lexically_normal().string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

std::string join(const std::string& dir, std::string_view name) {
  std::string path = dir;
  if (path.empty() || path.back() != '/') path += '/';
  path += name;
  return path;
}

bool is_under(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.starts_with(dir) && (path[dir.size()] == '/' || dir == "/");
}

std::string read_sysctl(const char* file) {
  std::ifstream in(file);
  std::string value;
  in >> value;
  return value.empty() ? "?" : value;
}

std::string watch_limit_problem() {
  return "out of inotify watches (fs.inotify.max_user_watches = " +
         read_sysctl("/proc/sys/fs/inotify/max_user_watches") +
         "; raise it, e.g. sysctl -w fs.inotify.max_user_watches=524288)";
}

struct Root {
  config::WatchConfig config;
  std::string path;  // normalised config.path
  std::size_t index = 0;
  NameFilter filter;
  std::vector<fs::path> excluded;  // done/failed directories of every entry, other entries nested inside
  DropWatcher::Mode mode = DropWatcher::Mode::missing;
  int wd = -1;
  std::string problem;                             // why it is missing or polled; logged when it changes
  std::string unwatched_reason;                    // why the root itself has no watch (polled)
  std::uint64_t serial = 0;                        // tells a poll timer's handler whether its root still exists
  std::unique_ptr<asio::steady_timer> poll_timer;  // set once the poll interval is known
};

struct WatchedDirectory {
  std::string path;
  Root* root = nullptr;
};

// A matching name in a watch directory: settling, reported, or skipped as not a regular file.
struct KnownFile {
  Root* root = nullptr;
  std::uint64_t generation = 0;  // the last scan (or event) that saw it
  bool special = false;
  bool reported = false;
  FileState reported_state;
};

// Only what lies inside this entry's tree matters, so an unrelated entry's change leaves it alone.
std::vector<fs::path> excluded_for(const config::WatchConfig& watch, const std::vector<config::WatchConfig>& all) {
  std::vector<fs::path> excluded;
  const std::string path = normalized(watch.path);
  const auto exclude_if_inside = [&](const fs::path& candidate) {
    std::string text = normalized(candidate);
    if (is_under(text, path)) excluded.emplace_back(std::move(text));
  };
  for (const auto& other : all) {
    exclude_if_inside(other.done_dir);
    exclude_if_inside(other.failed_dir);
    // A watch entry inside a recursive one owns its own directory.
    if (&other != &watch) exclude_if_inside(other.path);
  }
  return excluded;
}

std::unique_ptr<Root> make_root(const config::WatchConfig& watch, std::size_t index,
                                const std::vector<config::WatchConfig>& all) {
  static std::uint64_t serials = 0;
  auto root = std::make_unique<Root>(Root{watch,
                                          normalized(watch.path),
                                          index,
                                          NameFilter(watch.patterns),
                                          excluded_for(watch, all),
                                          DropWatcher::Mode::missing,
                                          -1,
                                          {},
                                          {},
                                          ++serials,
                                          nullptr});
  return root;
}

}  // namespace

class DropWatcher::Impl : public std::enable_shared_from_this<DropWatcher::Impl> {
 public:
  Impl(asio::io_context& io, std::vector<config::WatchConfig> watches, WatchEvents& events, DropWatcherOptions options)
      : events_(events),
        options_(options),
        stream_(io),
        settle_timer_(io),
        retry_timer_(io),
        safety_timer_(io),
        read_buffer_(kReadBufferBytes),
        warnings_(kRepeatedWarningInterval) {
    for (std::size_t i = 0; i < watches.size(); ++i) roots_.push_back(make_root(watches[i], i, watches));
  }

  void start() {
    if (running_ || stopped_) return;
    running_ = true;
    open_inotify();
    // docs/files.md: every watch first, then the scans, so nothing slips in between.
    std::vector<bool> present;
    for (auto& root : roots_) present.push_back(add_root_watch(*root));
    for (std::size_t i = 0; i < roots_.size(); ++i) {
      if (present[i]) full_scan(*roots_[i]);
    }
    start_read();
    arm_safety_rescan();
    arm_retry_if_needed();
    arm_settle_timer();
  }

  void stop() {
    running_ = false;
    stopped_ = true;
    settle_timer_.cancel();
    retry_timer_.cancel();
    safety_timer_.cancel();
    for (auto& root : roots_) root->poll_timer.reset();
    boost::system::error_code ignored;
    stream_.close(ignored);  // closing the descriptor removes every watch
    dirs_by_wd_.clear();
    wd_by_path_.clear();
    files_.clear();
    tracker_ = SettleTracker{};
  }

  void reconfigure(std::vector<config::WatchConfig> watches) {
    std::vector<std::unique_ptr<Root>> next;
    std::vector<Root*> added;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < watches.size(); ++i) {
      auto excluded = excluded_for(watches[i], watches);
      auto same = std::find_if(roots_.begin(), roots_.end(), [&](const std::unique_ptr<Root>& old) {
        return old && old->config == watches[i] && old->excluded == excluded;
      });
      if (same != roots_.end()) {
        next.push_back(std::move(*same));
        next.back()->index = i;
        ++kept;
      } else {
        next.push_back(make_root(watches[i], i, watches));
        added.push_back(next.back().get());
      }
    }
    std::size_t dropped = 0;
    for (auto& old : roots_) {
      if (!old) continue;
      drop_root_state(*old);
      ++dropped;
    }
    roots_ = std::move(next);
    spdlog::info("watch directories reconfigured: {} kept, {} added, {} dropped", kept, added.size(), dropped);
    if (!running_) return;
    std::vector<bool> present;
    for (Root* root : added) present.push_back(add_root_watch(*root));
    for (std::size_t i = 0; i < added.size(); ++i) {
      if (present[i]) full_scan(*added[i]);
    }
    arm_retry_if_needed();
    arm_settle_timer();
  }

  void rescan_all() {
    if (!running_) return;
    for (auto& root : roots_) {
      if (root->mode == Mode::watching) {
        full_scan(*root);
      } else {
        bring_up(*root);
      }
    }
    arm_retry_if_needed();
    arm_settle_timer();
  }

  void simulate_queue_overflow() {
    if (!running_) return;
    if (stream_.is_open()) {
      // Drop what the kernel queued, as an overflow loses it.
      std::array<std::byte, 64 * 1024> discarded{};
      while (::read(stream_.native_handle(), discarded.data(), discarded.size()) > 0) {
      }
    }
    struct inotify_event overflow {};
    overflow.wd = -1;
    overflow.mask = IN_Q_OVERFLOW;
    std::array<std::byte, sizeof(overflow)> record{};
    std::memcpy(record.data(), &overflow, sizeof(overflow));
    dispatch(record);
  }

  [[nodiscard]] Mode mode(std::size_t index) const {
    return index < roots_.size() ? roots_[index]->mode : Mode::missing;
  }
  [[nodiscard]] std::size_t settling_count() const { return tracker_.size(); }
  [[nodiscard]] std::size_t watched_directory_count() const { return dirs_by_wd_.size(); }
  [[nodiscard]] std::size_t overflow_count() const { return overflows_; }

 private:
  // Scans one tree: adds a watch to each directory before listing it.
  class TreeScan final : public ScanVisitor {
   public:
    TreeScan(Impl& impl, Root& root, std::uint64_t generation) : impl_(impl), root_(root), generation_(generation) {}

    bool enter_directory(const fs::path& dir) override {
      const std::string path = dir.string();
      if (path == root_.path || !impl_.stream_.is_open()) return true;
      const int wd = impl_.add_watch(path, root_, false);
      if (wd == -ENOSPC) {
        watch_limit_hit = true;
      } else if (wd < 0 && wd != -ENOENT) {
        impl_.warn_limited("watch:" + path, "cannot watch {}: {}", path, std::strerror(-wd));
      }
      return true;
    }
    void found_file(const fs::path& file, const FileState& state) override {
      impl_.consider(root_, file.string(), state, Activity::seen, generation_);
    }
    void found_special(const fs::path& entry, FileKind kind) override {
      impl_.note_special(root_, entry.string(), kind, generation_);
    }
    void entry_error(const fs::path& entry, const Error& error) override {
      failed.push_back(entry.string());
      impl_.warn_limited("scan:" + entry.string(), "{}", error.message);
    }

    bool watch_limit_hit = false;
    std::vector<std::string> failed;  // whatever sits below these was not seen, and is not gone

   private:
    Impl& impl_;
    Root& root_;
    std::uint64_t generation_;
  };

  template <class... Args>
  void warn_limited(const std::string& key, fmt::format_string<Args...> format, Args&&... args) {
    const auto suppressed = warnings_.admit(key, SteadyClock::now());
    if (!suppressed) return;
    const std::string message = fmt::format(format, std::forward<Args>(args)...);
    if (*suppressed == 0) {
      spdlog::warn("{}", message);
    } else {
      spdlog::warn("{} (and {} times more since the last report)", message, *suppressed);
    }
  }

  void open_inotify() {
    const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
      const int error = errno;
      spdlog::error("cannot start inotify ({}; see fs.inotify.max_user_instances): scanning watch directories every {}",
                    std::strerror(error), format_duration(options_.retry_interval));
      return;
    }
    stream_.assign(fd);
  }

  void start_read() {
    if (!running_ || !stream_.is_open()) return;
    stream_.async_read_some(asio::buffer(read_buffer_),
                            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t bytes) {
                              self->on_read(ec, bytes);
                            });
  }

  void on_read(const boost::system::error_code& ec, std::size_t bytes) {
    if (!running_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      spdlog::error("reading inotify events failed ({}): scanning watch directories every {} instead", ec.message(),
                    format_duration(options_.retry_interval));
      boost::system::error_code ignored;
      stream_.close(ignored);
      dirs_by_wd_.clear();
      wd_by_path_.clear();
      for (auto& root : roots_) {
        root->wd = -1;
        root->unwatched_reason = "has no inotify watch (reading inotify events failed)";
        if (root->mode == Mode::watching) set_mode(*root, Mode::polling, root->unwatched_reason);
      }
      arm_retry_if_needed();
      return;
    }
    dispatch(std::span<const std::byte>(read_buffer_.data(), bytes));
    start_read();
  }

  void dispatch(std::span<const std::byte> bytes) {
    parsed_.clear();
    const InotifyParse parse = parse_inotify_events(bytes, parsed_);
    bool overflow = parse.truncated;
    for (const auto& event : parsed_) {
      if (event.wd == -1 && (event.mask & IN_Q_OVERFLOW) != 0) {
        overflow = true;
        continue;
      }
      handle(event);
    }
    parsed_.clear();
    if (overflow) {
      ++overflows_;
      warn_limited("overflow",
                   "inotify events were lost (queue overflow; fs.inotify.max_queued_events = {}): rescanning",
                   read_sysctl("/proc/sys/fs/inotify/max_queued_events"));
      rescan_all();
    }
    arm_settle_timer();
  }

  void handle(const InotifyEvent& event) {
    const auto watched = dirs_by_wd_.find(event.wd);
    if (watched == dirs_by_wd_.end()) return;  // a watch already removed
    Root& root = *watched->second.root;
    if ((event.mask & IN_IGNORED) != 0) {
      const bool was_root = event.wd == root.wd;
      remove_watch(event.wd, false);
      if (was_root) lose_root(root, "was removed or unmounted");
      return;
    }
    if ((event.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
      // A subdirectory's own removal is handled through its parent's IN_DELETE / IN_MOVED_FROM.
      if (event.wd == root.wd) lose_root(root, (event.mask & IN_MOVE_SELF) != 0 ? "was moved away" : "was deleted");
      return;
    }
    if (event.name.empty()) return;
    const std::string path = join(watched->second.path, event.name);
    if ((event.mask & IN_ISDIR) != 0) {
      handle_directory_event(root, path, event.name, event.mask);
    } else {
      handle_file_event(root, path, event.name, event.mask);
    }
  }

  void handle_directory_event(Root& root, const std::string& path, std::string_view name, std::uint32_t mask) {
    if ((mask & (IN_CREATE | IN_MOVED_TO)) != 0) {
      if (root.config.recursive) {
        // Files may already be inside (mkdir -p && cp): watch it, then list it at once.
        if (!is_excluded(root, path)) scan_tree(root, path, false);
      } else if (root.filter.accepts(name)) {
        note_special(root, path, FileKind::directory, generation_);
      }
    } else if ((mask & (IN_DELETE | IN_MOVED_FROM)) != 0) {
      forget_tree(path);
    }
  }

  void handle_file_event(Root& root, const std::string& path, std::string_view name, std::uint32_t mask) {
    if (handle_ready_marker_event(root, path, mask)) return;
    if (!root.filter.accepts(name)) {
      if ((mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) != 0) note_unmatched(root, path, name);
      return;
    }
    if ((mask & (IN_DELETE | IN_MOVED_FROM)) != 0) {
      tracker_.forget(path);
      files_.erase(path);
      events_.file_removed(path);
      return;
    }
    // A settling file's deadline check compares mtime and ctime anyway; an attribute change must
    // not end the wait for a writer that has not closed yet.
    if ((mask & IN_ATTRIB) != 0 && tracker_.contains(path)) return;
    const Activity activity = (mask & (IN_MODIFY | IN_CREATE)) != 0 ? Activity::written
                              : (mask & IN_MOVED_TO) != 0           ? Activity::renamed
                                                                    : Activity::closed;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      const int error = errno;
      tracker_.forget(path);  // gone already: its IN_DELETE / IN_MOVED_FROM follows
      if (error != ENOENT) warn_limited("stat:" + path, "cannot examine {}: {}", path, std::strerror(error));
      return;
    }
    const FileKind kind = file_kind_of(st.st_mode);
    if (kind != FileKind::regular) {
      note_special(root, path, kind, generation_);
      return;
    }
    consider(root, path, file_state_of(st), activity, generation_);
  }

  void consider(Root& root, const std::string& path, const FileState& state, Activity activity,
                std::uint64_t generation) {
    if (root.config.ready_marker && archive_of_marker(root, path)) return;  // a marker is never an archive
    auto [entry, inserted] = files_.try_emplace(path);
    KnownFile& known = entry->second;
    known.root = &root;
    known.generation = generation;
    known.special = false;
    if (root.config.ready_marker) {
      consider_marked_archive(path, known, state);
      return;
    }
    if (known.reported) {
      if (known.reported_state == state && activity != Activity::written) return;
      known.reported = false;
      events_.file_changing(path);
    }
    if (tracker_.observe(path, state, activity, root.config.settle, SteadyClock::now()) ==
        SettleTracker::Verdict::ready) {
      report(path, known, state);
    }
  }

  // A name no pattern matches (notes.txt) is left alone; saying so once tells the user why.
  // Temporary names (.part, dot-files) are expected to be renamed and are not worth a line.
  void note_unmatched(const Root& root, const std::string& path, std::string_view name) {
    if (is_ignored_name(name)) return;
    if (unmatched_logged_.size() >= kUnmatchedNamesRemembered) unmatched_logged_.clear();
    if (!unmatched_logged_.insert(path).second) return;
    spdlog::info("ignoring {}: its name matches none of the watch's patterns ({})", path,
                 fmt::join(root.filter.patterns(), ", "));
  }

  // With a ready_marker, "x.zip.ready" names the archive "x.zip" when the watch queues that name.
  static std::optional<std::string> archive_of_marker(const Root& root, const std::string& path) {
    const std::string& marker = *root.config.ready_marker;
    if (path.size() <= marker.size() || !path.ends_with(marker)) return std::nullopt;
    std::string archive = path.substr(0, path.size() - marker.size());
    const auto slash = archive.rfind('/');
    const std::string_view name = std::string_view(archive).substr(slash == std::string::npos ? 0 : slash + 1);
    if (name.empty() || !root.filter.accepts(name)) return std::nullopt;
    return archive;
  }

  // A marker appearing makes its archive ready at once; a marker without an archive, or a
  // marker's removal, changes nothing.
  bool handle_ready_marker_event(Root& root, const std::string& path, std::uint32_t mask) {
    if (!root.config.ready_marker) return false;
    const auto archive = archive_of_marker(root, path);
    if (!archive) return false;
    if ((mask & (IN_DELETE | IN_MOVED_FROM)) != 0) return true;
    struct stat st {};
    if (::lstat(archive->c_str(), &st) != 0) return true;
    if (const FileKind kind = file_kind_of(st.st_mode); kind != FileKind::regular) {
      note_special(root, *archive, kind, generation_);
      return true;
    }
    consider(root, *archive, file_state_of(st), Activity::closed, generation_);
    return true;
  }

  // Under a ready_marker the archive is complete once its marker exists: no settle wait. Before
  // that it is only remembered (a scan or the marker's event looks again).
  void consider_marked_archive(const std::string& path, KnownFile& known, const FileState& state) {
    tracker_.forget(path);
    if (known.reported && known.reported_state == state) return;
    struct stat st {};
    const bool marked = ::lstat(ready_marker_of(*known.root, path).c_str(), &st) == 0;
    if (known.reported) {
      known.reported = false;
      events_.file_changing(path);
    }
    if (marked) report(path, known, state);
  }

  static std::string ready_marker_of(const Root& root, const std::string& archive) {
    return archive + *root.config.ready_marker;
  }

  void note_special(Root& root, const std::string& path, FileKind kind, std::uint64_t generation) {
    tracker_.forget(path);
    auto [entry, inserted] = files_.try_emplace(path);
    KnownFile& known = entry->second;
    known.root = &root;
    known.generation = generation;
    known.reported = false;
    if (known.special) return;
    known.special = true;
    spdlog::warn("skipping {}: a {}, not a regular file (only regular files are queued)", path, to_string(kind));
  }

  void report(const std::string& path, KnownFile& known, const FileState& state) {
    known.reported = true;
    known.reported_state = state;
    const Root& root = *known.root;
    ReadyFile ready{path,
                    root.index,
                    root.config.path,
                    root.config.project_id,
                    state.device,
                    state.inode,
                    state.size,
                    state.mtime_ns,
                    state.ctime_ns,
                    std::nullopt,
                    root.config.validate,
                    root.config.registration,
                    root.config.token_file};
    if (root.config.ready_marker) ready.ready_marker = ready_marker_of(root, path);
    events_.file_ready(ready);
  }

  // The root's own watch: inotify_add_watch follows a configured symlink here, and only here.
  // True when the directory is there to be scanned (watched, or to be polled without a watch).
  bool add_root_watch(Root& root) {
    root.wd = -1;
    if (!stream_.is_open()) {
      root.unwatched_reason = "has no inotify watch (inotify is unavailable)";
      return true;
    }
    const int wd = add_watch(root.path, root, true);
    if (wd >= 0) {
      root.wd = wd;
      root.unwatched_reason.clear();
      return true;
    }
    switch (-wd) {
      case ENOSPC:
        root.unwatched_reason = watch_limit_problem();
        return true;
      case ENOENT:
        set_mode(root, Mode::missing, "does not exist");
        return false;
      case ENOTDIR:
        set_mode(root, Mode::missing, "is not a directory");
        return false;
      case EACCES:
        set_mode(root, Mode::missing, "cannot be read (permission denied)");
        return false;
      default:
        set_mode(root, Mode::missing, std::string("cannot be watched: ") + std::strerror(-wd));
        return false;
    }
  }

  // A watch descriptor, or -errno.
  int add_watch(const std::string& dir, Root& root, bool is_root) {
    if (options_.watch_limit_for_test != 0 && dirs_by_wd_.size() >= options_.watch_limit_for_test &&
        !wd_by_path_.contains(dir)) {
      return -ENOSPC;
    }
    // Below the root, IN_DONT_FOLLOW keeps a symlink from leading the watch out of the tree.
    const std::uint32_t mask = kWatchMask | (is_root ? 0U : static_cast<std::uint32_t>(IN_DONT_FOLLOW));
    const int wd = ::inotify_add_watch(stream_.native_handle(), dir.c_str(), mask);
    if (wd < 0) return -errno;
    if (const auto old = wd_by_path_.find(dir); old != wd_by_path_.end() && old->second != wd) {
      remove_watch(old->second, true);  // the directory was replaced; the old watch follows a gone inode
    }
    const auto [entry, inserted] = dirs_by_wd_.try_emplace(wd, WatchedDirectory{dir, &root});
    if (!inserted && entry->second.path != dir) {
      warn_limited("alias:" + dir, "{} is the same directory as {}: watched once, as {}", dir, entry->second.path,
                   entry->second.path);
      return wd;
    }
    wd_by_path_[dir] = wd;
    return wd;
  }

  void remove_watch(int wd, bool from_kernel) {
    const auto watched = dirs_by_wd_.find(wd);
    if (watched == dirs_by_wd_.end()) return;
    if (const auto by_path = wd_by_path_.find(watched->second.path);
        by_path != wd_by_path_.end() && by_path->second == wd) {
      wd_by_path_.erase(by_path);
    }
    dirs_by_wd_.erase(watched);
    if (from_kernel && stream_.is_open()) ::inotify_rm_watch(stream_.native_handle(), wd);
  }

  // A subdirectory deleted or moved away: its watches go, and so do the files known below it.
  void forget_tree(const std::string& dir) {
    const std::string prefix = dir + "/";
    std::vector<int> watches;
    if (const auto self = wd_by_path_.find(dir); self != wd_by_path_.end()) watches.push_back(self->second);
    for (auto it = wd_by_path_.lower_bound(prefix); it != wd_by_path_.end() && it->first.starts_with(prefix); ++it) {
      watches.push_back(it->second);
    }
    for (const int wd : watches) remove_watch(wd, true);

    files_.erase(dir);  // a directory noted as skipped
    std::vector<std::string> removed;
    auto it = files_.lower_bound(prefix);
    while (it != files_.end() && it->first.starts_with(prefix)) {
      tracker_.forget(it->first);
      if (!it->second.special) removed.push_back(it->first);
      it = files_.erase(it);
    }
    for (const auto& path : removed) events_.file_removed(path);
  }

  // Everything the watcher holds for a root, without reporting removals: the files may well
  // still exist (an unreadable directory, a dropped watch entry).
  void drop_root_state(Root& root) {
    std::vector<int> watches;
    for (const auto& [wd, watched] : dirs_by_wd_) {
      if (watched.root == &root) watches.push_back(wd);
    }
    for (const int wd : watches) remove_watch(wd, true);
    root.wd = -1;
    root.poll_timer.reset();  // a pending wait ends with operation_aborted
    for (auto it = files_.begin(); it != files_.end();) {
      if (it->second.root == &root) {
        tracker_.forget(it->first);
        it = files_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void lose_root(Root& root, const std::string& why) {
    drop_root_state(root);
    set_mode(root, Mode::missing, why);
    arm_retry_if_needed();
  }

  void set_mode(Root& root, Mode mode, const std::string& problem) {
    if (mode == Mode::watching) {
      if (root.mode != Mode::watching && !root.problem.empty()) spdlog::info("watching {} again", root.path);
      root.mode = mode;
      root.problem.clear();
      return;
    }
    if (root.mode != mode || root.problem != problem) {
      if (mode == Mode::missing) {
        spdlog::warn("watch directory {} {}; retrying every {}", root.path, problem,
                     format_duration(options_.retry_interval));
      } else if (!problem.empty()) {
        spdlog::warn("watch directory {}: {}; scanning it every {} instead", root.path, problem,
                     format_duration(options_.retry_interval));
      }
    }
    root.mode = mode;
    root.problem = problem;
  }

  void bring_up(Root& root) {
    if (add_root_watch(root)) full_scan(root);
  }

  void full_scan(Root& root) { scan_tree(root, root.path, true); }

  void scan_tree(Root& root, const std::string& start, bool full) {
    const std::uint64_t generation = ++generation_;
    TreeScan scan(*this, root, generation);
    const ScanOptions options{root.filter, root.config.recursive, root.excluded};
    const auto listed = scan_directory(start, options, scan);
    if (!listed) {
      if (full) lose_root(root, "cannot be listed: " + listed.error().message);
      // A subdirectory gone again before it was listed: its own events said so.
      return;
    }
    if (full && root.wd < 0) {
      set_mode(root, Mode::polling, root.unwatched_reason);
    } else if (scan.watch_limit_hit) {
      set_mode(root, Mode::polling, watch_limit_problem());
    } else if (full) {
      set_mode(root, Mode::watching, {});
    }
    arm_retry_if_needed();
    if (!full) return;
    arm_poll(root);
    sweep(root, generation, scan.failed);
    events_.rescan_finished(root.index);
  }

  // After a full scan: what the scan did not see is gone (events lost to an overflow).
  void sweep(Root& root, std::uint64_t generation, const std::vector<std::string>& unlisted) {
    std::vector<std::string> removed;
    for (auto it = files_.begin(); it != files_.end();) {
      const bool stale = it->second.root == &root && it->second.generation < generation &&
                         std::none_of(unlisted.begin(), unlisted.end(),
                                      [&](const std::string& dir) { return is_under(it->first, dir); });
      if (!stale) {
        ++it;
        continue;
      }
      tracker_.forget(it->first);
      if (!it->second.special) removed.push_back(it->first);
      it = files_.erase(it);
    }
    for (const auto& path : removed) events_.file_removed(path);
  }

  [[nodiscard]] static bool is_excluded(const Root& root, const std::string& dir) {
    return std::any_of(root.excluded.begin(), root.excluded.end(), [&](const fs::path& excluded) {
      const std::string text = excluded.string();
      return dir == text || is_under(dir, text);
    });
  }

  void arm_settle_timer() {
    const auto next = tracker_.next_deadline();
    if (!next || !running_) return;
    if (settle_armed_ && *settle_armed_ <= *next) return;
    settle_armed_ = *next;
    settle_timer_.expires_at(*next);
    const std::uint64_t wait = ++settle_wait_;
    settle_timer_.async_wait([self = shared_from_this(), wait](const boost::system::error_code& ec) {
      // A stale wait (the timer was re-armed after it expired) leaves the current one to act.
      if (ec || !self->running_ || wait != self->settle_wait_) return;
      self->settle_armed_.reset();
      self->on_settle_deadline();
    });
  }

  void on_settle_deadline() {
    const auto now = SteadyClock::now();
    for (const auto& path : tracker_.take_due(now)) {
      const auto known = files_.find(path);
      if (known == files_.end()) {
        tracker_.forget(path);
        continue;
      }
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) {
        // Gone: its removal event follows (or the next scan notices).
        tracker_.forget(path);
        continue;
      }
      if (const FileKind kind = file_kind_of(st.st_mode); kind != FileKind::regular) {
        note_special(*known->second.root, path, kind, known->second.generation);
        continue;
      }
      const FileState state = file_state_of(st);
      if (tracker_.recheck(path, state, now) == SettleTracker::Verdict::ready) report(path, known->second, state);
    }
    arm_settle_timer();
  }

  // How often `poll` rescans this directory on top of its inotify watch; nullopt: never.
  std::optional<Duration> poll_interval(const Root& root) const {
    switch (root.config.poll.kind) {
      case config::PollSetting::Kind::off:
        return std::nullopt;
      case config::PollSetting::Kind::every:
        return root.config.poll.interval;
      case config::PollSetting::Kind::automatic:
        break;
    }
    const auto filesystem = network_filesystem_of(root.path);
    if (!filesystem) return std::nullopt;
    spdlog::info(
        "watch directory {} is on {}, where writes made elsewhere raise no inotify event: rescanning it every {}",
        root.path, *filesystem, format_duration(options_.network_poll_interval));
    return options_.network_poll_interval;
  }

  // Armed once per root, after its first full scan (the filesystem is known to be there then).
  void arm_poll(Root& root) {
    if (root.poll_timer || !running_) return;
    const auto interval = poll_interval(root);
    if (!interval) return;
    root.poll_timer = std::make_unique<asio::steady_timer>(stream_.get_executor());
    wait_for_poll(root, *interval);
  }

  void wait_for_poll(Root& root, Duration interval) {
    root.poll_timer->expires_after(interval);
    root.poll_timer->async_wait(
        [self = shared_from_this(), serial = root.serial, interval](const boost::system::error_code& ec) {
          if (ec || !self->running_) return;
          const auto polled = std::find_if(self->roots_.begin(), self->roots_.end(),
                                           [&](const auto& candidate) { return candidate->serial == serial; });
          if (polled == self->roots_.end() || !(*polled)->poll_timer) return;
          Root& due = **polled;
          // A root without its watch is scanned by the retry timer already.
          if (due.mode == Mode::watching) self->full_scan(due);
          if (due.poll_timer) self->wait_for_poll(due, interval);
          self->arm_settle_timer();
        });
  }

  void arm_retry_if_needed() {
    if (!running_ || retry_armed_) return;
    if (std::none_of(roots_.begin(), roots_.end(), [](const auto& root) { return root->mode != Mode::watching; })) {
      return;
    }
    retry_armed_ = true;
    retry_timer_.expires_after(options_.retry_interval);
    retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      self->retry_armed_ = false;
      if (ec || !self->running_) return;
      for (auto& root : self->roots_) {
        if (root->mode != Mode::watching) self->bring_up(*root);
      }
      self->arm_retry_if_needed();
      self->arm_settle_timer();
    });
  }

  void arm_safety_rescan() {
    if (!running_ || options_.safety_rescan_interval <= Duration::zero()) return;
    safety_timer_.expires_after(options_.safety_rescan_interval);
    safety_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || !self->running_) return;
      spdlog::debug("safety rescan of every watch directory");
      self->rescan_all();
      self->arm_safety_rescan();
    });
  }

  WatchEvents& events_;
  DropWatcherOptions options_;
  asio::posix::stream_descriptor stream_;
  asio::steady_timer settle_timer_;
  asio::steady_timer retry_timer_;
  asio::steady_timer safety_timer_;
  std::vector<std::byte> read_buffer_;
  std::vector<InotifyEvent> parsed_;
  LogLimiter warnings_;

  std::vector<std::unique_ptr<Root>> roots_;
  std::unordered_map<int, WatchedDirectory> dirs_by_wd_;
  std::map<std::string, int> wd_by_path_;   // ordered: a subtree is a key range
  std::map<std::string, KnownFile> files_;  // ordered: a subtree is a key range
  SettleTracker tracker_;
  std::unordered_set<std::string> unmatched_logged_;
  std::uint64_t generation_ = 0;
  std::size_t overflows_ = 0;

  std::optional<SettleTracker::TimePoint> settle_armed_;
  std::uint64_t settle_wait_ = 0;
  bool retry_armed_ = false;
  bool running_ = false;
  bool stopped_ = false;
};

DropWatcher::DropWatcher(asio::io_context& io, std::vector<config::WatchConfig> watches, WatchEvents& events,
                         DropWatcherOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(watches), events, options)) {}

DropWatcher::~DropWatcher() {
  impl_->stop();
}

void DropWatcher::start() {
  impl_->start();
}
void DropWatcher::stop() {
  impl_->stop();
}
void DropWatcher::reconfigure(std::vector<config::WatchConfig> watches) {
  impl_->reconfigure(std::move(watches));
}
void DropWatcher::rescan_all() {
  impl_->rescan_all();
}
void DropWatcher::simulate_queue_overflow_for_test() {
  impl_->simulate_queue_overflow();
}
DropWatcher::Mode DropWatcher::mode(std::size_t watch_index) const {
  return impl_->mode(watch_index);
}
std::size_t DropWatcher::settling_count() const {
  return impl_->settling_count();
}
std::size_t DropWatcher::watched_directory_count() const {
  return impl_->watched_directory_count();
}
std::size_t DropWatcher::overflow_count() const {
  return impl_->overflow_count();
}

std::string_view to_string(DropWatcher::Mode mode) {
  switch (mode) {
    case DropWatcher::Mode::watching:
      return "watching";
    case DropWatcher::Mode::polling:
      return "polling";
    case DropWatcher::Mode::missing:
      return "missing";
  }
  return "missing";
}

}  // namespace modeldrop::watch
