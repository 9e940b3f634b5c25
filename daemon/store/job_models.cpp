// Model registration's records: which registrations are due, and what each look at the model
// found. The registration itself starts in the transaction that makes its job succeeded
// (start_registration, job_rows.cpp).

#include "store/job_rows.hpp"
#include "store/job_store.hpp"

namespace modeldrop::store {

Result<std::vector<Job>> JobStore::registrations_due(WallTime now, std::size_t limit) {
  // Through the partial index jobs_model_in_progress: only registrations in progress are read.
  static const std::string sql = select_jobs(
      "WHERE model_status IN ('registering', 'validating') AND (model_next_check_at IS NULL OR "
      "model_next_check_at <= ?1) ORDER BY model_next_check_at, id LIMIT ?2");
  return db_.query_all(sql, read_job, timestamp(now), limit);
}

Result<std::optional<WallTime>> JobStore::next_registration_check(WallTime now) {
  static const std::string sql =
      "SELECT EXISTS (SELECT 1 FROM jobs WHERE model_status IN ('registering', 'validating') "
      "AND model_next_check_at IS NULL), (SELECT min(model_next_check_at) FROM jobs "
      "WHERE model_status IN ('registering', 'validating'))";
  return next_due_from(db_, sql, now);
}

Result<std::optional<Job>> JobStore::record_model_status(JobId job, const ModelUpdate& update, WallTime now) {
  if (update.status.empty()) return invalid("job " + std::to_string(job) + ": a model status cannot be empty");
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  static const std::string sql = returning_job(
      "UPDATE jobs SET model_status = ?2, model_status_reason = ?3, model_next_check_at = ?4, "
      "model_checked_at = CASE WHEN ?5 THEN ?6 ELSE model_checked_at END, updated_at = ?6 "
      "WHERE id = ?1 AND model_status IN ('registering', 'validating')");
  auto after = db_.query_one(sql, read_job, job, update.status, update.reason, timestamp(update.next_check_at),
                             update.answered ? 1 : 0, timestamp(now));
  if (!after) return after.error();
  if (auto committed = write->commit(); !committed) return committed.error();
  return after;
}

Result<void> JobStore::set_sidecar_path(JobId job, const std::optional<std::filesystem::path>& path, WallTime now) {
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  if (auto done =
          db_.exec("UPDATE jobs SET sidecar_path = ?2, updated_at = ?3 WHERE id = ?1", job, path, timestamp(now));
      !done) {
    return done.error();
  }
  if (db_.changes() == 0) return unknown_job(job);
  return write->commit();
}

}  // namespace modeldrop::store
