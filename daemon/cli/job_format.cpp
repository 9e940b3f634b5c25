#include "cli/job_format.hpp"

#include "common/size.hpp"
#include "common/text.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>

namespace modeldrop::cli {

using store::Attempt;
using store::Job;
using store::JobState;

namespace {

// Columns of UTF-8 text on a terminal: one per code point (no East Asian wide forms in practice).
std::size_t display_width(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// At most `width` columns, with "…" when cut (never inside a UTF-8 sequence).
std::string shorten(std::string_view text, std::size_t width) {
  if (display_width(text) <= width) return std::string(text);
  std::string out;
  std::size_t columns = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool starts_code_point = (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80;
    if (starts_code_point && ++columns > width - 1) break;
    out.push_back(text[i]);
  }
  return out + "\u2026";
}

std::string pad_right(std::string_view text, std::size_t width) {
  std::string out(text);
  out.append(width - std::min(width, display_width(text)), ' ');
  return out;
}

std::string pad_left(std::string_view text, std::size_t width) {
  std::string out(width - std::min(width, display_width(text)), ' ');
  out.append(text);
  return out;
}

std::string text_or_dash(const std::optional<std::string>& text) {
  return text ? printable(*text) : "-";
}

std::string path_or_dash(const std::optional<std::filesystem::path>& path) {
  return path ? printable(path->string()) : "-";
}

std::string time_or_dash(const std::optional<WallTime>& t) {
  return t ? format_timestamp(*t) : "-";
}

std::chrono::seconds whole_seconds(WallClock::duration d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d);
}

// ---- JSON

boost::json::value json_text(const std::optional<std::string>& text) {
  if (!text) return nullptr;
  return boost::json::string(sanitize_utf8(*text));
}

boost::json::value json_path(const std::optional<std::filesystem::path>& path) {
  if (!path) return nullptr;
  return boost::json::string(sanitize_utf8(path->string()));
}

boost::json::value json_time(const std::optional<WallTime>& t) {
  if (!t) return nullptr;
  return boost::json::string(format_timestamp(*t));
}

template <class T>
boost::json::value json_number(const std::optional<T>& value) {
  if (!value) return nullptr;
  return *value;
}

}  // namespace

std::string printable(std::string_view text) {
  return one_printable_line(text, Tabs::escape);
}

std::string format_span(std::chrono::seconds span) {
  const auto total = std::max<std::int64_t>(0, span.count());
  if (total < 60) return fmt::format("{}s", total);
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  if (total < 86400) return fmt::format("{}h{:02}m", total / 3600, total % 3600 / 60);
  return fmt::format("{}d{:02}h", total / 86400, total % 86400 / 3600);
}

std::string progress_line(const Job& job) {
  constexpr std::uint64_t kBarWidth = 20;
  const std::uint64_t sent = std::min(job.bytes_sent, job.size_bytes);
  const std::uint64_t filled = job.size_bytes == 0 ? kBarWidth : sent * kBarWidth / job.size_bytes;
  const std::uint64_t percent = job.size_bytes == 0 ? 100 : sent * 100 / job.size_bytes;
  std::string line = "[" + std::string(filled, '#') + std::string(kBarWidth - filled, '-') + "] ";
  line += fmt::format("{:>3}%", percent);
  const double rate = job.upload_rate_bytes_per_s.value_or(0.0);
  if (rate > 0) {
    const auto left = static_cast<double>(job.size_bytes - sent) / rate;
    line += "  " + format_rate(rate) + "  ETA " + format_span(std::chrono::seconds(std::llround(left)));
  } else {
    line += "  -  ETA -";
  }
  return line;
}

std::string more_jobs_line(std::size_t shown, std::int64_t total) {
  const auto hidden = total - static_cast<std::int64_t>(shown);
  if (hidden <= 0) return {};
  return fmt::format("\u2026 {} more, use --limit {} to see them\n", hidden, total);
}

namespace {

// "validating (next look in 20s)", "error: <reason>", "registered once uploaded".
std::string model_status_text(const Job& job, const View& view) {
  if (!job.model_status) return job.state == JobState::succeeded ? "to register" : "registered once uploaded";
  std::string text = printable(*job.model_status);
  const bool in_progress = job.model_status == store::kModelRegistering || job.model_status == store::kModelValidating;
  if (in_progress && job.model_next_check_at && *job.model_next_check_at > view.now) {
    text += " (next look in " + format_span(whole_seconds(*job.model_next_check_at - view.now)) + ")";
  }
  if (job.model_status_reason) text += ": " + printable(*job.model_status_reason);
  return text;
}

}  // namespace

std::string model_situation(const Job& job, const View& view) {
  if (!job.model) return {};
  return "model " + printable(job.model->name) + ": " + model_status_text(job, view);
}

std::string job_situation(const Job& job, const View& view) {
  constexpr std::size_t kWidth = 60;
  switch (job.state) {
    case JobState::uploading:
      if (!view.daemon_running) {
        // Nothing is moving: the API takes whole files, so the daemon sends it again from the start.
        return "interrupted (modeldropd is not running; sent again when it starts)";
      }
      return progress_line(job);
    case JobState::pending: {
      std::string line = "due now";
      if (job.next_attempt_at && *job.next_attempt_at > view.now) {
        line = "next attempt in " + format_span(whole_seconds(*job.next_attempt_at - view.now));
      }
      if (job.last_error) line += "; " + printable(*job.last_error);
      return shorten(line, kWidth);
    }
    case JobState::succeeded: {
      // The model first: what a registering drop folder is for; the file id is in `show`.
      if (job.model) return shorten(model_situation(job, view) + "; " + text_or_dash(job.file_id), kWidth);
      // The job referred to first: a long file id is what gets cut, not the reference.
      if (job.duplicate_of) {
        return shorten("same content as job " + std::to_string(*job.duplicate_of) + ": " + text_or_dash(job.file_id),
                       kWidth);
      }
      return shorten(text_or_dash(job.file_id), kWidth);
    }
    case JobState::failed:
    case JobState::cancelled:
      return shorten(text_or_dash(job.last_error), kWidth);
  }
  return {};
}

std::string render_jobs_table(const std::vector<Job>& jobs, const View& view, const std::vector<int>& attempts_made) {
  if (jobs.empty()) return "no jobs\n";
  struct Row {
    std::string id, state, size, attempts, situation, path;
  };
  std::vector<Row> rows{{"ID", "STATE", "SIZE", "TRIES", "PROGRESS / NEXT / RESULT", "PATH"}};
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const Job& job = jobs[i];
    const auto tries = i < attempts_made.size() ? attempts_made[i] : job.attempts;
    rows.push_back({std::to_string(job.id), std::string(store::to_string(job.state)), format_bytes(job.size_bytes),
                    std::to_string(tries), job_situation(job, view), printable(job.path.string())});
  }
  std::size_t id_width = 0, state_width = 0, size_width = 0, attempts_width = 0, situation_width = 0;
  for (const auto& row : rows) {
    id_width = std::max(id_width, display_width(row.id));
    state_width = std::max(state_width, display_width(row.state));
    size_width = std::max(size_width, display_width(row.size));
    attempts_width = std::max(attempts_width, display_width(row.attempts));
    situation_width = std::max(situation_width, display_width(row.situation));
  }
  std::string out;
  for (const auto& row : rows) {
    out += pad_left(row.id, id_width) + "  " + pad_right(row.state, state_width) + "  " +
           pad_left(row.size, size_width) + "  " + pad_left(row.attempts, attempts_width) + "  " +
           pad_right(row.situation, situation_width) + "  " + row.path + "\n";
  }
  return out;
}

std::string attempts_summary(const store::JobWithAttempts& entry, bool daemon_running) {
  std::int64_t held = 0, aborted = 0, running = 0;
  for (const Attempt& attempt : entry.attempts) {
    if (!attempt.outcome) {
      ++running;
    } else if (*attempt.outcome == store::AttemptOutcome::held) {
      ++held;
    } else if (*attempt.outcome == store::AttemptOutcome::aborted) {
      ++aborted;
    }
  }
  std::string out = fmt::format("{} ({} counted toward max_attempts", entry.attempts.size(), entry.job.attempts);
  if (held > 0) out += fmt::format(", {} held", held);
  if (aborted > 0) out += fmt::format(", {} aborted", aborted);
  if (running > 0) out += fmt::format(", {} {}", running, daemon_running ? "running" : "interrupted");
  return out + ")";
}

std::string render_job(const store::JobWithAttempts& entry, const View& view) {
  const Job& job = entry.job;
  std::string out = fmt::format("job {}\n", job.id);
  const auto field = [&](std::string_view name, const std::string& value) {
    out += fmt::format("  {:<20} {}\n", std::string(name) + ":", value);
  };
  std::string state(store::to_string(job.state));
  if (job.state == JobState::uploading) state += "  " + job_situation(job, view);
  field("state", state);
  field("path", printable(job.path.string()));
  field("current path", path_or_dash(job.current_path));
  field("watch dir", job.watch_dir ? printable(job.watch_dir->string()) : "- (added by modeldrop add)");
  field("project", job.project_id ? printable(*job.project_id) : "- (api.project_id, if any)");
  field("token file", job.token_file ? printable(*job.token_file) : "- (the global token)");
  field("size", fmt::format("{} ({} bytes)", format_bytes(job.size_bytes), job.size_bytes));
  field("sha256", text_or_dash(job.sha256));
  field("attempts", attempts_summary(entry, view.daemon_running));
  std::string next = time_or_dash(job.next_attempt_at);
  if (job.state == JobState::pending) {
    next = job.next_attempt_at && *job.next_attempt_at > view.now
               ? next + " (in " + format_span(whole_seconds(*job.next_attempt_at - view.now)) + ")"
               : "due now";
  }
  field("next attempt", next);
  field("bytes sent", fmt::format("{} ({} bytes)", format_bytes(job.bytes_sent), job.bytes_sent));
  field("file id", text_or_dash(job.file_id));
  field("file status", text_or_dash(job.file_status));
  field("file status details", text_or_dash(job.file_status_details));
  field("http status", job.http_status ? std::to_string(*job.http_status) : "-");
  field("last error", text_or_dash(job.last_error));
  if (job.duplicate_of) field("same content as", "job " + std::to_string(*job.duplicate_of));
  if (job.model) {
    field("model", printable(job.model->name) + " (base " + printable(job.model->base_model) + ")");
    if (job.model->description) field("model description", printable(*job.model->description));
    field("model status", model_status_text(job, view));
    field("model started", time_or_dash(job.model_started_at));
    field("model checked", time_or_dash(job.model_checked_at));
  }
  if (job.sidecar_path) field("sidecar", printable(job.sidecar_path->string()));
  field("created", format_timestamp(job.created_at));
  field("updated", format_timestamp(job.updated_at));
  field("finished", time_or_dash(job.finished_at));

  out += "\n";
  if (entry.attempts.empty()) return out + "no attempts\n";
  out += fmt::format("  {:>7}  {:<24}  {:<24}  {:<11}  {:>4}  {:>9}  {}\n", "ATTEMPT", "STARTED", "FINISHED", "OUTCOME",
                     "HTTP", "SENT", "ERROR");
  for (const Attempt& attempt : entry.attempts) {
    // An open attempt: its bytes so far are the job's; without a daemon, nothing runs it.
    std::string outcome = attempt.outcome       ? std::string(store::to_string(*attempt.outcome))
                          : view.daemon_running ? "running"
                                                : "interrupted";
    const std::uint64_t sent = attempt.outcome ? attempt.bytes_sent : std::max(attempt.bytes_sent, job.bytes_sent);
    out += fmt::format("  {:>7}  {:<24}  {:<24}  {:<11}  {:>4}  {:>9}  {}\n", attempt.attempt,
                       format_timestamp(attempt.started_at), time_or_dash(attempt.finished_at), outcome,
                       attempt.http_status ? std::to_string(*attempt.http_status) : "-", format_bytes(sent),
                       text_or_dash(attempt.error));
  }
  return out;
}

std::string render_status(const StatusReport& status, WallTime now) {
  std::string out;
  if (status.daemon_running) {
    const auto& daemon = *status.daemon;
    const auto age = whole_seconds(now - daemon.heartbeat_at);
    out += fmt::format("daemon:   running (pid {}, version {}, heartbeat {} ago)", daemon.pid,
                       printable(daemon.version), format_span(age));
    // The daemon refreshes it every 5 s: much older means it is stuck.
    if (age > std::chrono::seconds(30)) out += "  -- no recent heartbeat: is it stuck?";
    out += "\n";
  } else if (status.daemon) {
    out += fmt::format("daemon:   not running (pid {} last seen {} ago)\n", status.daemon->pid,
                       format_span(whole_seconds(now - status.daemon->heartbeat_at)));
  } else {
    out += "daemon:   not running\n";
  }
  if (status.paused_since) {
    out += "uploads:  paused since " + format_timestamp(*status.paused_since) + " (modeldrop resume releases them)\n";
  } else if (status.daemon_running && status.daemon->held_reason) {
    out += "uploads:  held: " + printable(*status.daemon->held_reason) + "\n";
  } else if (status.daemon_running) {
    out += "uploads:  active\n";
  } else {
    out += "uploads:  waiting for the daemon\n";
  }
  if (status.daemon_running) out += "rate:     " + format_rate(status.upload_rate_bytes_per_s) + "\n";
  out += "\n";
  out += fmt::format("{:<10}  {:>8}  {:>10}\n", "STATE", "JOBS", "BYTES");
  for (const auto& state : status.states) {
    out += fmt::format("{:<10}  {:>8}  {:>10}\n", store::to_string(state.state), state.jobs, format_bytes(state.bytes));
  }
  return out;
}

boost::json::object job_json(const Job& job) {
  boost::json::object o;
  o["id"] = job.id;
  o["path"] = sanitize_utf8(job.path.string());
  o["current_path"] = json_path(job.current_path);
  o["watch_dir"] = json_path(job.watch_dir);
  o["project_id"] = json_text(job.project_id);
  o["size_bytes"] = job.size_bytes;
  o["sha256"] = json_text(job.sha256);
  o["state"] = store::to_string(job.state);
  o["attempts"] = job.attempts;
  o["next_attempt_at"] = json_time(job.next_attempt_at);
  o["bytes_sent"] = job.bytes_sent;
  o["file_id"] = json_text(job.file_id);
  o["file_status"] = json_text(job.file_status);
  o["file_status_details"] = json_text(job.file_status_details);
  o["http_status"] = json_number(job.http_status);
  o["last_error"] = json_text(job.last_error);
  o["created_at"] = format_timestamp(job.created_at);
  o["updated_at"] = format_timestamp(job.updated_at);
  o["finished_at"] = json_time(job.finished_at);
  o["duplicate_of"] = json_number(job.duplicate_of);
  o["model_name"] = job.model ? json_text(job.model->name) : nullptr;
  o["model_base_model"] = job.model ? json_text(job.model->base_model) : nullptr;
  o["model_description"] = job.model ? json_text(job.model->description) : nullptr;
  o["model_status"] = json_text(job.model_status);
  o["model_status_reason"] = json_text(job.model_status_reason);
  o["model_checked_at"] = json_time(job.model_checked_at);
  o["sidecar_path"] = json_path(job.sidecar_path);
  return o;
}

boost::json::object job_with_attempts_json(const store::JobWithAttempts& entry) {
  auto o = job_json(entry.job);
  boost::json::array history;
  for (const Attempt& attempt : entry.attempts) {
    boost::json::object a;
    a["job_id"] = attempt.job_id;
    a["attempt"] = attempt.attempt;
    a["started_at"] = format_timestamp(attempt.started_at);
    a["finished_at"] = json_time(attempt.finished_at);
    a["http_status"] = json_number(attempt.http_status);
    a["bytes_sent"] = attempt.bytes_sent;
    a["outcome"] = attempt.outcome ? boost::json::value(store::to_string(*attempt.outcome)) : nullptr;
    a["error"] = json_text(attempt.error);
    history.push_back(std::move(a));
  }
  o["attempt_history"] = std::move(history);
  return o;
}

boost::json::object status_json(const StatusReport& status, WallTime now) {
  boost::json::object daemon;
  daemon["running"] = status.daemon_running;
  if (status.daemon_running) {
    daemon["pid"] = status.daemon->pid;
    daemon["version"] = sanitize_utf8(status.daemon->version);
    daemon["heartbeat_age_s"] = std::max<std::int64_t>(0, whole_seconds(now - status.daemon->heartbeat_at).count());
    daemon["held_reason"] = json_text(status.daemon->held_reason);
  } else {
    daemon["pid"] = nullptr;
    daemon["version"] = nullptr;
    daemon["heartbeat_age_s"] = nullptr;
    daemon["held_reason"] = nullptr;
  }
  boost::json::object states;
  for (const auto& state : status.states) {
    states[store::to_string(state.state)] = boost::json::object{{"jobs", state.jobs}, {"bytes", state.bytes}};
  }
  boost::json::object o;
  o["daemon"] = std::move(daemon);
  o["paused"] = status.paused_since.has_value();
  o["states"] = std::move(states);
  const double rate = status.daemon_running ? status.upload_rate_bytes_per_s : 0.0;
  o["upload_rate_bytes_per_s"] = static_cast<std::uint64_t>(std::llround(std::max(0.0, rate)));
  return o;
}

}  // namespace modeldrop::cli
