// The upload cycle: a pending job is claimed, an attempt begins, progress is recorded, and the
// attempt ends (or the claim is given back); after a crash, what was in flight is requeued.

#include "store/job_rows.hpp"
#include "store/job_store.hpp"

#include <algorithm>

namespace modeldrop::store {

namespace {

// One statement: finding and taking the job cannot be split by another writer. The subquery
// walks index jobs_state (state, id, next_attempt_at) oldest first and stops at the first due job.
// With dedupe, a job may only be claimed once its content hash is known (docs/http.md).
std::string claim_next_sql(bool require_sha256, std::size_t held = 0) {
  return returning_job(
      "UPDATE jobs SET state = 'uploading', updated_at = ?1, bytes_sent = 0, progress_at_ms = NULL, "
      "upload_rate_bytes_per_s = NULL "
      "WHERE id = (SELECT id FROM jobs WHERE state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= "
      "?1)" +
      std::string(require_sha256 ? " AND sha256 IS NOT NULL" : "") + skip_held("", held) +
      " ORDER BY id LIMIT 1) AND NOT EXISTS (SELECT 1 FROM settings WHERE key = 'paused')");
}

}  // namespace

Result<std::optional<Job>> JobStore::claim_next(WallTime now, bool require_sha256, HeldTokens held) {
  return claim_one(db_, claim_next_sql(require_sha256, held.size()), now, held);
}

Result<std::vector<std::string>> JobStore::explain_claim_next() {
  return db_.query_all("EXPLAIN QUERY PLAN " + claim_next_sql(false), [](const Statement& row) { return row.text(3); });
}

Result<int> JobStore::begin_attempt(JobId job_id, WallTime now) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  // Only for an uploading job without an open attempt; anything else inserts nothing.
  auto number = db_.query_one(
      "INSERT INTO attempts (job_id, attempt, started_at, sent_identity) "
      "SELECT ?1, coalesce((SELECT max(attempt) FROM attempts WHERE job_id = ?1), 0) + 1, ?2, "
      "(SELECT device || ':' || inode || ':' || size_bytes || ':' || mtime_ns FROM jobs WHERE id = ?1) "
      "WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND state = 'uploading') "
      "AND NOT EXISTS (SELECT 1 FROM attempts WHERE job_id = ?1 AND outcome IS NULL) RETURNING attempt",
      first_int64, job_id, timestamp(now));
  if (!number) return number.error();
  if (!*number) {
    auto job = require_job(job_id);
    if (!job) return job.error();
    if (job->state != JobState::uploading) return illegal(*job, "only an uploading job can start an attempt");
    return make_error("job " + std::to_string(job_id) + " already has an attempt running",
                      StoreErrc::illegal_transition);
  }
  if (auto done = db_.exec(
          "UPDATE jobs SET bytes_sent = 0, progress_at_ms = ?2, upload_rate_bytes_per_s = NULL, updated_at = ?3 "
          "WHERE id = ?1",
          job_id, unix_ms(now), timestamp(now));
      !done) {
    return done.error();
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return static_cast<int>(**number);
}

Result<void> JobStore::record_progress(JobId job_id, std::uint64_t bytes_sent, WallTime now) {
  // The rate is smoothed over a few calls (new sample weighs 0.3); the right-hand sides all see
  // the row as it was before this UPDATE.
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  if (auto done = db_.exec(
          "UPDATE jobs SET upload_rate_bytes_per_s = CASE "
          "WHEN progress_at_ms IS NULL OR ?3 <= progress_at_ms OR ?2 < bytes_sent THEN upload_rate_bytes_per_s "
          "WHEN upload_rate_bytes_per_s IS NULL THEN (?2 - bytes_sent) * 1000.0 / (?3 - progress_at_ms) "
          "ELSE 0.7 * upload_rate_bytes_per_s + 0.3 * ((?2 - bytes_sent) * 1000.0 / (?3 - progress_at_ms)) END, "
          "bytes_sent = min(?2, size_bytes), progress_at_ms = ?3, updated_at = ?4 "
          "WHERE id = ?1 AND state = 'uploading'",
          job_id, bytes_sent, unix_ms(now), timestamp(now));
      !done) {
    return done.error();
  }
  if (db_.changes() == 0) {
    auto job = require_job(job_id);
    if (!job) return job.error();
    // Cancelled by the CLI while the bytes were moving: the daemon learns of it separately.
    if (job->state != JobState::cancelled) return illegal(*job, "only an uploading job makes progress");
  }
  return write->commit();
}

namespace {

// A report that cannot describe a real attempt, whatever the job: why, or none.
std::optional<Error> malformed_report(const AttemptReport& report) {
  const bool success_outcome =
      report.outcome == AttemptOutcome::succeeded || report.outcome == AttemptOutcome::reconciled;
  const auto job_text = "job " + std::to_string(report.job);
  if (report.next_state == JobState::uploading || report.next_state == JobState::cancelled) {
    return invalid(job_text + ": an attempt cannot leave its job " + std::string(to_string(report.next_state)));
  }
  if (success_outcome != (report.next_state == JobState::succeeded)) {
    return invalid(job_text + ": outcome " + std::string(to_string(report.outcome)) + " cannot make the job " +
                   std::string(to_string(report.next_state)));
  }
  if (success_outcome && (!report.file_id || report.file_id->empty())) {
    return invalid(job_text + ": a successful attempt needs the file id");
  }
  if ((report.outcome == AttemptOutcome::held || report.outcome == AttemptOutcome::aborted) &&
      report.counts_toward_attempts) {
    return invalid(job_text + ": held and aborted attempts do not count toward attempts");
  }
  return std::nullopt;
}

// Just what finish_attempt's decision needs of the job: state, the file's identity and the open attempt.
struct AttemptingJob {
  JobState state = JobState::pending;
  FileIdentity file;
  std::optional<int> open_attempt;
};

Result<std::optional<AttemptingJob>> attempting_job(Connection& db, JobId job) {
  return db.query_one(
      "SELECT state, size_bytes, device, inode, mtime_ns, "
      "(SELECT attempt FROM attempts WHERE job_id = jobs.id AND outcome IS NULL) FROM jobs WHERE id = ?1",
      [](const Statement& r) {
        AttemptingJob current;
        current.state = parse_job_state(r.text(0)).value_or(JobState::failed);
        current.file = {static_cast<std::uint64_t>(r.int64(2)), static_cast<std::uint64_t>(r.int64(3)),
                        read_uint64(r, 1), r.int64(4)};
        if (!r.is_null(5)) current.open_attempt = static_cast<int>(r.int64(5));
        return current;
      },
      job);
}

// What is recorded: the report, unless `modeldrop cancel` won meanwhile (the job stays cancelled
// whatever the server said) or the file changed while it was sent (docs/http.md: that success
// is not accepted).
AttemptReport effective_report(const AttemptReport& report, const AttemptingJob& current, bool cancelled_meanwhile) {
  const bool success_outcome =
      report.outcome == AttemptOutcome::succeeded || report.outcome == AttemptOutcome::reconciled;
  AttemptReport effective = report;
  effective.bytes_sent = std::min(report.bytes_sent, current.file.size_bytes);
  if (cancelled_meanwhile) {
    std::string error = "cancelled during the attempt";
    if (success_outcome) error += "; the server had accepted the upload as " + *report.file_id;
    if (report.error) error += "; " + *report.error;
    effective.outcome = AttemptOutcome::aborted;
    effective.error = error;
  } else if (success_outcome && report.sent_file && *report.sent_file != current.file) {
    effective.outcome = AttemptOutcome::aborted;
    effective.error = "the file changed while it was sent";
    effective.next_state = JobState::pending;
    effective.counts_toward_attempts = false;
    effective.file_id.reset();
    effective.file_status.reset();
    effective.file_status_details.reset();
    effective.last_error = "the file changed while it was sent";
  }
  return effective;
}

}  // namespace

Result<Job> JobStore::finish_attempt(const AttemptReport& report, WallTime now) {
  if (auto malformed = malformed_report(report)) return std::move(*malformed);
  const auto job_text = "job " + std::to_string(report.job);

  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  auto found = attempting_job(db_, report.job);
  if (!found) return found.error();
  if (!*found) return unknown_job(report.job);
  const AttemptingJob& current = **found;
  const bool cancelled_meanwhile = current.state == JobState::cancelled && current.open_attempt.has_value();
  if (!cancelled_meanwhile) {
    if (current.state != JobState::uploading) {
      return make_error(
          job_text + " is " + std::string(to_string(current.state)) + "; only an uploading job can finish an attempt",
          StoreErrc::illegal_transition);
    }
    if (!current.open_attempt) return make_error(job_text + " has no attempt running", StoreErrc::illegal_transition);
  }
  const AttemptReport effective = effective_report(report, current, cancelled_meanwhile);

  if (auto closed =
          db_.exec("UPDATE attempts SET finished_at = ?3, http_status = ?4, bytes_sent = ?5, outcome = ?6, error = ?7, "
                   "in_doubt = ?8 WHERE job_id = ?1 AND attempt = ?2",
                   report.job, *current.open_attempt, timestamp(now), effective.http_status, effective.bytes_sent,
                   to_string(effective.outcome), effective.error, effective.in_doubt ? 1 : 0);
      !closed) {
    return closed.error();
  }

  Result<std::optional<Job>> after = std::optional<Job>{};
  if (cancelled_meanwhile) {
    static const std::string sql = returning_job(
        "UPDATE jobs SET bytes_sent = ?2, http_status = ?3, updated_at = ?4, progress_at_ms = NULL, "
        "upload_rate_bytes_per_s = NULL WHERE id = ?1");
    after = db_.query_one(sql, read_job, report.job, effective.bytes_sent, effective.http_status, timestamp(now));
  } else {
    const bool succeeded = effective.next_state == JobState::succeeded;
    if (succeeded) {
      if (auto started = start_registration(db_, report.job, now); !started) return started.error();
    }
    static const std::string sql = returning_job(
        "UPDATE jobs SET state = ?2, attempts = attempts + ?3, next_attempt_at = ?4, bytes_sent = ?5, "
        "http_status = ?6, file_id = coalesce(?7, file_id), file_status = coalesce(?8, file_status), "
        "file_status_details = coalesce(?9, file_status_details), "
        "last_error = CASE WHEN ?10 THEN NULL ELSE coalesce(?11, last_error) END, "
        "updated_at = ?12, finished_at = ?13, progress_at_ms = NULL, upload_rate_bytes_per_s = NULL "
        "WHERE id = ?1");
    after = db_.query_one(
        sql, read_job, report.job, to_string(effective.next_state), effective.counts_toward_attempts ? 1 : 0,
        effective.next_state == JobState::pending ? timestamp(effective.next_attempt_at) : std::nullopt,
        effective.bytes_sent, effective.http_status, effective.file_id, effective.file_status,
        effective.file_status_details, succeeded ? 1 : 0, effective.last_error, timestamp(now),
        is_final(effective.next_state) ? std::optional<std::string>(timestamp(now)) : std::nullopt);
  }
  if (!after) return after.error();
  if (auto committed = write->commit(); !committed) return committed.error();
  return std::move(**after);
}

Result<Job> JobStore::release_claim(JobId job_id, std::optional<WallTime> next_attempt_at, WallTime now) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  auto job = require_job(job_id);
  if (!job) return job.error();
  if (job->state != JobState::uploading && job->state != JobState::cancelled) {
    return illegal(*job, "only an uploading job can be released");
  }
  auto running = has_open_attempt(job_id);
  if (!running) return running.error();
  if (*running) {
    return make_error("job " + std::to_string(job_id) + " has an attempt running; finish_attempt ends it",
                      StoreErrc::illegal_transition);
  }
  if (job->state == JobState::cancelled) return std::move(*job);  // cancelled meanwhile: nothing to give back
  static const std::string sql = returning_job(
      "UPDATE jobs SET state = 'pending', next_attempt_at = ?2, bytes_sent = 0, updated_at = ?3, "
      "progress_at_ms = NULL, upload_rate_bytes_per_s = NULL WHERE id = ?1");
  auto after = db_.query_one(sql, read_job, job_id, timestamp(next_attempt_at), timestamp(now));
  if (!after) return after.error();
  if (auto committed = write->commit(); !committed) return committed.error();
  return std::move(**after);
}

Result<RecoveryReport> JobStore::recover_after_crash(WallTime now) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  RecoveryReport report;
  // The server may have stored what such an attempt sent: it is in doubt, and the job's next
  // attempt looks for that copy before sending again.
  if (auto done =
          db_.exec("UPDATE attempts SET outcome = 'aborted', finished_at = ?1, in_doubt = 1, "
                   "error = coalesce(error, 'the daemon stopped during the attempt'), "
                   "bytes_sent = max(bytes_sent, (SELECT bytes_sent FROM jobs WHERE jobs.id = attempts.job_id)) "
                   "WHERE outcome IS NULL",
                   timestamp(now));
      !done) {
    return done.error();
  }
  report.attempts_aborted = db_.changes();
  if (auto done = db_.exec(
          "UPDATE jobs SET state = 'pending', updated_at = ?1, progress_at_ms = NULL, upload_rate_bytes_per_s = NULL "
          "WHERE state = 'uploading'",
          timestamp(now));
      !done) {
    return done.error();
  }
  report.jobs_requeued = db_.changes();
  if (auto committed = write->commit(); !committed) return committed.error();
  return report;
}

}  // namespace modeldrop::store
