#pragma once

// How `modeldrop` shows jobs: aligned tables and progress bars for people, and the stable
// JSON shapes of CONTRACT §2 for scripts.

#include "common/timestamp.hpp"
#include "store/job_store.hpp"

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modeldrop::cli {

// What `modeldrop status` reports.
struct StatusReport {
  std::optional<store::DaemonRecord> daemon;  // the row, live or stale
  bool daemon_running = false;                // the row's pid is alive
  std::optional<WallTime> paused_since;
  std::vector<store::StateSummary> states;  // all five
};

// Text safe for a terminal: invalid UTF-8 as U+FFFD, control characters escaped (\n, \x1b).
std::string printable(std::string_view text);

// "45s", "12m05s", "3h07m", "2d04h".
std::string format_span(std::chrono::seconds span);

// "[########------------]  40%  12 MiB/s  ETA 1m05s" for an uploading job.
std::string progress_line(const store::Job& job);

// The one-line summary of a job's situation shown in `jobs` (progress, next attempt, error, file id).
std::string job_situation(const store::Job& job, WallTime now);

std::string render_jobs_table(const std::vector<store::Job>& jobs, WallTime now);
std::string render_job(const store::JobWithAttempts& job, WallTime now);
std::string render_status(const StatusReport& status, WallTime now);

// CONTRACT §2 JSON: a job keyed by the §4 `jobs` columns; `show` adds "attempt_history".
boost::json::object job_json(const store::Job& job);
boost::json::object job_with_attempts_json(const store::JobWithAttempts& job);
boost::json::object status_json(const StatusReport& status, WallTime now);

}  // namespace modeldrop::cli
