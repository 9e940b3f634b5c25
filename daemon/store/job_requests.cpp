// Requests from `modeldrop` on named jobs: cancel and retry, one result per job.

#include "store/job_rows.hpp"
#include "store/job_store.hpp"

#include <algorithm>

namespace modeldrop::store {

Result<std::vector<JobRequestResult>> JobStore::for_each_requested_job(std::span<const JobId> jobs,
                                                                       const RequestRefusal& refusal,
                                                                       const RequestChange& change) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  std::vector<JobRequestResult> results;
  for (const JobId id : jobs) {
    JobRequestResult result{id, std::nullopt, JobState::pending};
    auto job = load_job(id);
    if (!job) return job.error();
    if (!*job) {
      result.error = unknown_job(id);
    } else {
      result.previous_state = (*job)->state;
      auto refused = refusal(**job);
      if (!refused) return refused.error();
      if (*refused) {
        result.error = std::move(**refused);
      } else if (auto changed = change(id); !changed) {
        return changed.error();
      }
    }
    results.push_back(std::move(result));
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return results;
}

Result<std::vector<JobRequestResult>> JobStore::cancel(std::span<const JobId> jobs, WallTime now) {
  const auto refusal = [](const Job& job) -> Result<std::optional<Error>> {
    if (job.state != JobState::pending && job.state != JobState::uploading) {
      return std::optional<Error>{illegal(job, "only pending or uploading jobs can be cancelled")};
    }
    return std::nullopt;
  };
  const auto change = [&](JobId id) -> Result<void> {
    // An attempt in flight stays open: the daemon aborts the upload and records it.
    return db_.exec(
        "UPDATE jobs SET state = 'cancelled', last_error = ?2, finished_at = ?3, updated_at = ?3, "
        "next_attempt_at = NULL WHERE id = ?1",
        id, "cancelled by request (modeldrop cancel)", timestamp(now));
  };
  return for_each_requested_job(jobs, refusal, change);
}

Result<std::vector<JobRequestResult>> JobStore::retry(std::span<const JobId> jobs, WallTime now, Retry which) {
  const auto refusal = [&](const Job& job) -> Result<std::optional<Error>> {
    if (job.state == JobState::succeeded && which == Retry::unfinished) {
      return std::optional<Error>{make_error("job " + std::to_string(job.id) + " has already succeeded (" +
                                                 job.file_id.value_or("no file id") +
                                                 "); `retry --force` uploads it again",
                                             StoreErrc::illegal_transition)};
    }
    if (job.state != JobState::failed && job.state != JobState::cancelled && job.state != JobState::succeeded) {
      return std::optional<Error>{illegal(job, "only failed or cancelled jobs can be retried")};
    }
    auto running = has_open_attempt(job.id);
    // (The error is named as such: an Error also converts to the optional<Error> value.)
    if (!running) return Result<std::optional<Error>>(boost::system::in_place_error, running.error());
    if (*running) {
      // Cancelled while uploading, and the daemon has not stopped that upload yet: a retry now
      // would let the old upload finish a job that is pending again.
      return std::optional<Error>{make_error(
          "job " + std::to_string(job.id) + ": its cancelled upload is still being stopped; retry it in a moment",
          StoreErrc::illegal_transition)};
    }
    if (job.state == JobState::failed && job.last_error && job.last_error->starts_with(kSidecarProblem)) {
      // Retried as it is, it would upload without the model its sidecar was meant to describe.
      return std::optional<Error>{
          make_error("job " + std::to_string(job.id) +
                         " failed on its sidecar; fix the sidecar and put it with a copy of the archive back into the "
                         "watched folder (a copy is a new file: the same file is never queued twice)",
                     StoreErrc::illegal_transition)};
    }
    if (!job.current_path) {
      return std::optional<Error>{make_error("job " + std::to_string(job.id) + ": its file is gone (" +
                                                 job.last_error.value_or("no current path") + "); nothing to retry",
                                             StoreErrc::illegal_transition)};
    }
    return std::nullopt;
  };
  const auto change = [&](JobId id) -> Result<void> {
    return db_.exec(
        "UPDATE jobs SET state = 'pending', attempts = 0, budget_started_at = ?2, next_attempt_at = NULL, "
        "finished_at = NULL, bytes_sent = 0, last_error = NULL, updated_at = ?2, "
        "file_id = NULL, file_status = NULL, file_status_details = NULL, http_status = NULL, duplicate_of = NULL, "
        "model_status = NULL, model_status_reason = NULL, model_checked_at = NULL, model_started_at = NULL, "
        "model_next_check_at = NULL WHERE id = ?1",
        id, timestamp(now));
  };
  return for_each_requested_job(jobs, refusal, change);
}

Result<std::vector<JobId>> JobStore::retry_failed(WallTime now) {
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  auto retried = db_.query_all(
      "UPDATE jobs SET state = 'pending', attempts = 0, budget_started_at = ?1, next_attempt_at = NULL, "
      "finished_at = NULL, bytes_sent = 0, last_error = NULL, updated_at = ?1 "
      "WHERE state = 'failed' AND current_path IS NOT NULL AND coalesce(substr(last_error, 1, 9), '') <> 'sidecar: ' "
      "RETURNING id",
      first_int64, timestamp(now));
  if (!retried) return retried.error();
  if (auto committed = write->commit(); !committed) return committed.error();
  std::sort(retried->begin(), retried->end());
  return std::move(*retried);
}

}  // namespace modeldrop::store
