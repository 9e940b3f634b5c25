// Dedupe (docs/http.md): content hashes, a job completed from an earlier upload of the same
// content, and a job kept from uploading what another job of its project is uploading or
// waiting to upload.

#include "store/job_rows.hpp"
#include "store/job_store.hpp"

#include <algorithm>

namespace modeldrop::store {

namespace {

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Whether pending job `j` may be claimed under dedupe. Without a hash: only when no other job
// of its project, token and size is pending, uploading or succeeded (nothing it could duplicate;
// its hash is then computed beside the send). With one: only when no job of its project and
// token has the same content and is succeeded (it completes from that one instead), uploading,
// pending with a lower id (it waits for that one), and no job of that size uploads with its hash
// unknown yet. Jobs of another token never hold it back (that token may be on hold).
// Each NOT EXISTS is a search of index jobs_size_state (size_bytes, state, sha256): the content
// match and the hash-unknown upload are two searches, not one OR that would walk every job of
// the size (a thousand archives of one size made every claim and wake-up check quadratic).
constexpr std::string_view kClaimableUnderDedupe =
    "(j.sha256 IS NULL AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.size_bytes = j.size_bytes "
    "AND o.state IN ('pending', 'uploading', 'succeeded') AND o.id <> j.id AND o.project_id IS j.project_id "
    "AND o.token_file IS j.token_file)) "
    "OR (j.sha256 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.size_bytes = j.size_bytes "
    "AND o.state IN ('pending', 'uploading', 'succeeded') AND o.sha256 = j.sha256 AND o.id <> j.id "
    "AND o.project_id IS j.project_id AND o.token_file IS j.token_file AND (o.state <> 'pending' OR o.id < j.id)) "
    "AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.size_bytes = j.size_bytes AND o.state = 'uploading' "
    "AND o.sha256 IS NULL AND o.project_id IS j.project_id AND o.token_file IS j.token_file))";

}  // namespace

Result<bool> JobStore::set_sha256(JobId job_id, std::string_view sha256_hex, const FileIdentity& hashed_file,
                                  WallTime now) {
  if (!is_sha256_hex(sha256_hex)) {
    return invalid("job " + std::to_string(job_id) + ": \"" + std::string(sha256_hex) +
                   "\" is not a lowercase hex SHA-256");
  }
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  if (auto done = db_.exec("UPDATE jobs SET sha256 = ?2, updated_at = ?3 "
                           "WHERE id = ?1 AND device = ?4 AND inode = ?5 AND size_bytes = ?6 AND mtime_ns = ?7",
                           job_id, sha256_hex, timestamp(now), hashed_file.device, hashed_file.inode,
                           hashed_file.size_bytes, hashed_file.mtime_ns);
      !done) {
    return done.error();
  }
  const bool stored = db_.changes() > 0;
  if (!stored) {
    // Either no such job, or the hash is of a file the job no longer names.
    if (auto job = require_job(job_id); !job) return job.error();
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return stored;
}

Result<std::optional<Job>> JobStore::find_succeeded_by_sha256(std::string_view sha256_hex,
                                                              const std::optional<std::string>& project_id,
                                                              const std::optional<std::string>& token_file) {
  // IS: a job without a project matches only another job without one (docs/http.md).
  static const std::string sql = select_jobs(
      "WHERE sha256 = ?1 AND project_id IS ?2 AND token_file IS ?3 AND state = 'succeeded' ORDER BY id LIMIT 1");
  return db_.query_one(sql, read_job, sha256_hex, project_id, token_file);
}

Result<Job> JobStore::complete_as_duplicate(JobId job_id, JobId of_job_id, WallTime now) {
  if (job_id == of_job_id) return invalid("job " + std::to_string(job_id) + " cannot duplicate itself");
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  auto job = require_job(job_id);
  if (!job) return job.error();
  auto original = require_job(of_job_id);
  if (!original) return original.error();
  if (job->state != JobState::pending && job->state != JobState::uploading) {
    return illegal(*job, "only a pending or uploading job can be completed as a duplicate");
  }
  if (original->state != JobState::succeeded) {
    return illegal(*original, "only a succeeded job's upload can be reused");
  }
  if (!job->sha256 || job->sha256 != original->sha256 || job->project_id != original->project_id ||
      job->token_file != original->token_file) {
    return invalid("job " + std::to_string(job_id) + " is not a duplicate of job " + std::to_string(of_job_id) +
                   " (the sha256, the project or the token differs)");
  }
  const auto reason = "the same content was uploaded by job " + std::to_string(of_job_id);
  if (auto aborted = abort_open_attempt(job_id, reason, now); !aborted) return aborted.error();
  if (auto started = start_registration(db_, job_id, now); !started) return started.error();
  static const std::string sql = returning_job(
      "UPDATE jobs SET state = 'succeeded', file_id = ?2, file_status = ?3, file_status_details = ?4, "
      "duplicate_of = ?5, last_error = NULL, next_attempt_at = NULL, finished_at = ?6, updated_at = ?6, "
      "progress_at_ms = NULL, upload_rate_bytes_per_s = NULL WHERE id = ?1");
  auto after = db_.query_one(sql, read_job, job_id, original->file_id, original->file_status,
                             original->file_status_details, of_job_id, timestamp(now));
  if (!after) return after.error();
  if (auto committed = write->commit(); !committed) return committed.error();
  return std::move(**after);
}

Result<std::optional<Job>> JobStore::claim_next_unique(WallTime now, HeldTokens held) {
  const std::string sql = returning_job(
      "UPDATE jobs SET state = 'uploading', updated_at = ?1, bytes_sent = 0, progress_at_ms = NULL, "
      "upload_rate_bytes_per_s = NULL "
      "WHERE id = (SELECT j.id FROM jobs j WHERE j.state = 'pending' AND (j.next_attempt_at IS NULL OR "
      "j.next_attempt_at <= ?1) AND (" +
      std::string(kClaimableUnderDedupe) + ")" + skip_held("j.", held.size()) +
      " ORDER BY j.id LIMIT 1) AND NOT EXISTS (SELECT 1 FROM settings WHERE key = 'paused')");
  return claim_one(db_, sql, now, held);
}

Result<std::optional<WallTime>> JobStore::next_due_at_unique(WallTime now, HeldTokens held) {
  // The cheap tests on j come first, so the claimability check runs only on the rows that matter.
  const std::string claimable = " AND (" + std::string(kClaimableUnderDedupe) + ")" + skip_held("j.", held.size());
  return next_due_from(db_,
                       "SELECT EXISTS (SELECT 1 FROM jobs j WHERE j.state = 'pending' AND j.next_attempt_at IS NULL" +
                           claimable +
                           "), (SELECT min(j.next_attempt_at) FROM jobs j WHERE j.state = 'pending' AND "
                           "j.next_attempt_at IS NOT NULL" +
                           claimable + ")",
                       now, held);
}

Result<std::vector<Job>> JobStore::pending_to_hash_first(std::size_t limit) {
  static const std::string sql = select_jobs(
      "j INDEXED BY jobs_pending_unhashed WHERE j.state = 'pending' AND j.sha256 IS NULL "
      "AND EXISTS (SELECT 1 FROM jobs o WHERE o.size_bytes = j.size_bytes "
      "AND o.state IN ('pending', 'uploading', 'succeeded') AND o.id <> j.id AND o.project_id IS j.project_id "
      "AND o.token_file IS j.token_file) ORDER BY j.id LIMIT ?1");
  return db_.query_all(sql, read_job, limit);
}

Result<std::vector<Job>> JobStore::pending_duplicates_of(JobId succeeded) {
  // The succeeded job's size and hash are constants of the query, so it searches index
  // jobs_size_state instead of testing every pending job.
  static const std::string sql = select_jobs(
      "j WHERE j.state = 'pending' AND j.id <> ?1 "
      "AND j.size_bytes = (SELECT size_bytes FROM jobs WHERE id = ?1 AND state = 'succeeded') "
      "AND j.sha256 = (SELECT sha256 FROM jobs WHERE id = ?1 AND state = 'succeeded') "
      "AND EXISTS (SELECT 1 FROM jobs o WHERE o.id = ?1 AND o.project_id IS j.project_id AND o.token_file IS "
      "j.token_file) ORDER BY j.id");
  return db_.query_all(sql, read_job, succeeded);
}

Result<std::vector<Job>> JobStore::complete_duplicates_of(JobId succeeded, WallTime now) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  auto waiting = pending_duplicates_of(succeeded);
  if (!waiting) return waiting.error();
  std::vector<Job> completed;
  for (const auto& job : *waiting) {
    auto duplicate = complete_as_duplicate(job.id, succeeded, now);
    if (!duplicate) return duplicate.error();
    completed.push_back(std::move(*duplicate));
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return completed;
}

}  // namespace modeldrop::store
