#pragma once

#include "common/duration.hpp"
#include "watch/file_state.hpp"

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace modeldrop::watch {

// Decides when a file is completely written (docs/configuration.md `settle`): ready once its size, mtime
// and ctime stayed unchanged for `settle` after the last change. Pure logic: the caller passes
// the time and the stat results, and drives every file with one timer set to next_deadline().
class SettleTracker {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  enum class Activity {
    written,  // IN_MODIFY / IN_CREATE: a writer may still be writing
    closed,   // IN_CLOSE_WRITE: the writer let go of it
    renamed,  // IN_MOVED_TO: a writer renamed a finished file into place; complete at once
    seen,     // a directory scan found it (no event says anything about it)
  };

  enum class Verdict {
    ready,              // report it now; the tracker forgot it
    settling,           // a deadline is set; recheck it then
    waiting_for_close,  // settle 0 and a writer is at work: nothing to do until it closes
    not_tracked,        // recheck of a file the tracker does not know (forgotten meanwhile)
  };

  // Every event restarts the file's settle period; a scan restarts it only when the state
  // differs from the last one seen, so periodic scans cannot keep a quiet file from settling.
  // A rename into place is the writer saying the file is complete: ready without a wait.
  Verdict observe(const std::string& path, const FileState& state, Activity activity, Duration settle, TimePoint now);

  // The earliest deadline of any settling file.
  [[nodiscard]] std::optional<TimePoint> next_deadline() const;

  // Files whose deadline has passed, unscheduled: the caller stats each and calls recheck
  // (or forget, when the file is gone).
  std::vector<std::string> take_due(TimePoint now);

  // Ready when `state` equals the state observed `settle` ago; else the period starts again.
  Verdict recheck(const std::string& path, const FileState& state, TimePoint now);

  void forget(const std::string& path);
  [[nodiscard]] bool contains(const std::string& path) const { return files_.contains(path); }
  [[nodiscard]] std::size_t size() const { return files_.size(); }

 private:
  using Schedule = std::multimap<TimePoint, std::string>;

  struct Pending {
    FileState state;
    Duration settle{0};
    bool writing = false;
    std::optional<Schedule::iterator> slot;
  };

  Verdict schedule(const std::string& path, Pending& pending, TimePoint deadline);
  void unschedule(Pending& pending);

  std::unordered_map<std::string, Pending> files_;
  Schedule schedule_;
};

}  // namespace modeldrop::watch
