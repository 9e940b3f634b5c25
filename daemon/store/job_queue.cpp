// Queueing a file, and what happens to the file outside its uploads: removed, unreadable,
// moved, or given a project.

#include "store/job_rows.hpp"
#include "store/job_store.hpp"

namespace modeldrop::store {

namespace {

// This very file if it was ever queued (never twice, whatever became of its job), else the
// newest job for the path: unless it succeeded, the changed file is still its business.
struct LatestForPath {
  JobId id = 0;
  JobState state = JobState::pending;
  bool same_file = false;
  bool attempt_running = false;  // an upload in flight (or a cancelled one the daemon has not closed yet)
};

Result<std::optional<LatestForPath>> latest_for_path(Connection& db, const NewJob& job) {
  return db.query_one(
      "SELECT id, state, inode = ?2 AND size_bytes = ?3 AND mtime_ns = ?4 AS same_file, "
      "EXISTS (SELECT 1 FROM attempts WHERE job_id = jobs.id AND outcome IS NULL) FROM jobs "
      "WHERE path = ?1 ORDER BY same_file DESC, id DESC LIMIT 1",
      [](const Statement& row) {
        return LatestForPath{row.int64(0), parse_job_state(row.text(1)).value_or(JobState::failed), row.int64(2) != 0,
                             row.int64(3) != 0};
      },
      job.path, job.file.inode, job.file.size_bytes, job.file.mtime_ns);
}

}  // namespace

Result<EnqueueResult> JobStore::enqueue(const NewJob& job, WallTime now) {
  if (!job.path.is_absolute()) return invalid("cannot queue " + job.path.string() + ": the path must be absolute");
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  const auto& file = job.file;

  auto latest = latest_for_path(db_, job);
  if (!latest) return latest.error();
  if (*latest && (*latest)->same_file) return EnqueueResult{(*latest)->id, EnqueueEffect::unchanged, (*latest)->state};

  EnqueueResult result;
  Result<void> written;
  if (*latest && ((*latest)->state == JobState::uploading || (*latest)->attempt_running)) {
    // The upload in flight sent the old file; its own check after sending sees the change
    // (and finish_attempt refuses a success for a file the job no longer names). The state is
    // left to finish_attempt, which must find the attempt's job as it left it.
    written = db_.exec(
        "UPDATE jobs SET device = ?2, inode = ?3, size_bytes = ?4, mtime_ns = ?5, sha256 = NULL, "
        "watch_dir = ?6, project_id = ?7, bytes_sent = min(bytes_sent, ?4), updated_at = ?8 WHERE id = ?1",
        (*latest)->id, file.device, file.inode, file.size_bytes, file.mtime_ns, job.watch_dir, job.project_id,
        timestamp(now));
    result = {(*latest)->id, EnqueueEffect::updated, (*latest)->state};
  } else if (*latest && (*latest)->state == JobState::pending) {
    written = db_.exec(
        "UPDATE jobs SET device = ?2, inode = ?3, size_bytes = ?4, mtime_ns = ?5, sha256 = NULL, "
        "watch_dir = ?6, project_id = ?7, current_path = path, next_attempt_at = ?8, bytes_sent = 0, "
        "updated_at = ?9 WHERE id = ?1",
        (*latest)->id, file.device, file.inode, file.size_bytes, file.mtime_ns, job.watch_dir, job.project_id,
        timestamp(job.next_attempt_at), timestamp(now));
    result = {(*latest)->id, EnqueueEffect::updated, JobState::pending};
  } else if (*latest && (*latest)->state != JobState::succeeded) {
    // Failed or cancelled, and the file has changed: a new file to send, with a fresh budget.
    written = db_.exec(
        "UPDATE jobs SET device = ?2, inode = ?3, size_bytes = ?4, mtime_ns = ?5, sha256 = NULL, "
        "watch_dir = ?6, project_id = ?7, current_path = path, next_attempt_at = ?8, bytes_sent = 0, "
        "updated_at = ?9, state = 'pending', attempts = 0, budget_started_at = ?9, finished_at = NULL, "
        "last_error = NULL, file_id = NULL, file_status = NULL, file_status_details = NULL, "
        "duplicate_of = NULL WHERE id = ?1",
        (*latest)->id, file.device, file.inode, file.size_bytes, file.mtime_ns, job.watch_dir, job.project_id,
        timestamp(job.next_attempt_at), timestamp(now));
    result = {(*latest)->id, EnqueueEffect::updated, JobState::pending};
  } else {
    auto inserted = db_.query_one(
        "INSERT INTO jobs (path, current_path, watch_dir, project_id, size_bytes, state, next_attempt_at, "
        "created_at, updated_at, device, inode, mtime_ns, budget_started_at) "
        "VALUES (?1, ?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?6, ?7, ?8, ?9, ?6) RETURNING id",
        first_int64, job.path, job.watch_dir, job.project_id, file.size_bytes, timestamp(job.next_attempt_at),
        timestamp(now), file.device, file.inode, file.mtime_ns);
    if (!inserted) return inserted.error();
    result = {inserted->value_or(0), EnqueueEffect::inserted, JobState::pending};
  }
  if (!written) return written.error();
  // What the queued (or re-queued) file gets: the archive check, the token file and the model
  // to register, as the watch (and the sidecar, or `modeldrop add`) said when it was queued.
  const auto& model = job.model;
  if (auto recorded =
          db_.exec("UPDATE jobs SET validate = ?2, model_name = CASE WHEN ?7 THEN model_name ELSE ?3 END, "
                   "model_base_model = CASE WHEN ?7 THEN model_base_model ELSE ?4 END, "
                   "model_description = CASE WHEN ?7 THEN model_description ELSE ?5 END, "
                   "sidecar_path = CASE WHEN ?7 THEN sidecar_path ELSE ?6 END, token_file = ?8 "
                   "WHERE id = ?1",
                   result.job, preflight::to_string(job.validate),
                   model ? std::optional<std::string>(model->name) : std::nullopt,
                   model ? std::optional<std::string>(model->base_model) : std::nullopt,
                   model ? model->description : std::nullopt, job.sidecar_path,
                   job.keep_registration && result.effect == EnqueueEffect::updated ? 1 : 0, job.token_file);
      !recorded) {
    return recorded.error();
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return result;
}

Result<void> JobStore::set_project_id(JobId job_id, std::string_view project_id, WallTime now) {
  return db_.exec("UPDATE jobs SET project_id = ?2, updated_at = ?3 WHERE id = ?1 AND project_id IS NULL", job_id,
                  project_id, timestamp(now));
}

Result<std::optional<Job>> JobStore::pending_job_for_path(const std::filesystem::path& current_path) {
  static const std::string sql = select_jobs("WHERE current_path = ?1 AND state = 'pending' ORDER BY id LIMIT 1");
  return db_.query_one(sql, read_job, current_path);
}

Result<Job> JobStore::mark_source_removed(JobId job_id, WallTime now) {
  return end_job(job_id, JobState::cancelled, "source removed", true, now);
}

Result<Job> JobStore::fail(JobId job_id, std::string_view reason, WallTime now) {
  return end_job(job_id, JobState::failed, reason, false, now);
}

// A pending or uploading job ends without an upload: its open attempt is aborted with the
// same reason, and a removed source leaves no current_path.
Result<Job> JobStore::end_job(JobId job_id, JobState final_state, std::string_view reason, bool source_gone,
                              WallTime now) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  auto job = require_job(job_id);
  if (!job) return job.error();
  if (job->state != JobState::pending && job->state != JobState::uploading) {
    return illegal(*job, source_gone ? "only a pending or uploading job can lose its source"
                                     : "only a pending or uploading job can fail");
  }
  if (auto aborted = abort_open_attempt(job_id, reason, now); !aborted) return aborted.error();
  static const std::string sql = returning_job(
      "UPDATE jobs SET state = ?2, last_error = ?3, finished_at = ?4, updated_at = ?4, next_attempt_at = NULL, "
      "progress_at_ms = NULL, upload_rate_bytes_per_s = NULL, "
      "current_path = CASE WHEN ?5 THEN NULL ELSE current_path END WHERE id = ?1");
  auto after =
      db_.query_one(sql, read_job, job_id, to_string(final_state), reason, timestamp(now), source_gone ? 1 : 0);
  if (!after) return after.error();
  if (auto committed = write->commit(); !committed) return committed.error();
  return std::move(**after);
}

namespace {

// One job's path column (current_path or ready_marker_path) set, or cleared when `path` is empty.
Result<void> set_path_column(Connection& db, std::string_view update_sql, JobId job_id,
                             const std::optional<std::filesystem::path>& path, WallTime now) {
  auto write = AtomicWrite::begin(db, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  if (auto done = db.exec(update_sql, job_id, path, timestamp(now)); !done) return done.error();
  if (db.changes() == 0) return unknown_job(job_id);
  return write->commit();
}

}  // namespace

Result<void> JobStore::set_current_path(JobId job_id, const std::optional<std::filesystem::path>& path, WallTime now) {
  return set_path_column(db_, "UPDATE jobs SET current_path = ?2, updated_at = ?3 WHERE id = ?1", job_id, path, now);
}

Result<void> JobStore::set_ready_marker_path(JobId job_id, const std::optional<std::filesystem::path>& path,
                                             WallTime now) {
  return set_path_column(db_, "UPDATE jobs SET ready_marker_path = ?2, updated_at = ?3 WHERE id = ?1", job_id, path,
                         now);
}

}  // namespace modeldrop::store
