#pragma once

// How `modeldrop` shows jobs: aligned tables and progress bars for people, and the stable
// JSON shapes for scripts (docs/cli.md).

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
  double upload_rate_bytes_per_s = 0;       // the sum of the uploading jobs' rates, as `jobs` shows them
};

// What the listings need besides the rows: the time, and whether an `uploading` row is live.
// Without a daemon it is an upload a crash or kill interrupted, not one in progress.
struct View {
  WallTime now;
  bool daemon_running = true;
};

// How the jobs table ends when the limit cut it: "… 10 more, use --limit 60 to see them".
std::string more_jobs_line(std::size_t shown, std::int64_t total);

// Text safe for a terminal: invalid UTF-8 as U+FFFD, control characters escaped (\n, \x1b).
std::string printable(std::string_view text);

// "45s", "12m05s", "3h07m", "2d04h".
std::string format_span(std::chrono::seconds span);

// "[########------------]  40%  12 MiB/s  ETA 1m05s" for an uploading job.
std::string progress_line(const store::Job& job);

// "model my-lora: validating (next look in 20s)": how far the job's model got; empty when the
// job registers none.
std::string model_situation(const store::Job& job, const View& view);

// The one-line summary of a job's situation shown in `jobs` (progress, next attempt, error, file id).
std::string job_situation(const store::Job& job, const View& view);

// TRIES is every attempt made (held, aborted and running ones too); `attempts_made` has one
// count per job, or is empty to show the counted attempts.
std::string render_jobs_table(const std::vector<store::Job>& jobs, const View& view,
                              const std::vector<int>& attempts_made = {});
std::string render_job(const store::JobWithAttempts& job, const View& view);
std::string render_status(const StatusReport& status, WallTime now);

// "2 (1 counted toward max_attempts, 1 held)": how the attempt history adds up. An open
// attempt is "running", or "interrupted" when no daemon runs it.
std::string attempts_summary(const store::JobWithAttempts& job, bool daemon_running = true);

// JSON: a job keyed by the public `jobs` columns (docs/database.md, the model's included) plus
// "duplicate_of";
// `show` adds "attempt_history".
boost::json::object job_json(const store::Job& job);
boost::json::object job_with_attempts_json(const store::JobWithAttempts& job);
boost::json::object status_json(const StatusReport& status, WallTime now);

}  // namespace modeldrop::cli
