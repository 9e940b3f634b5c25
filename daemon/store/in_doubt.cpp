// In-doubt reconciliation: the store's half. Decides, in one transaction with recording it,
// whether a file the API lists can only be the lost upload of the job asking.

#include "store/job_rows.hpp"
#include "store/job_store.hpp"

#include <algorithm>

namespace modeldrop::store {
namespace {

std::string identity_text(const FileIdentity& file) {
  return std::to_string(file.device) + ":" + std::to_string(file.inode) + ":" + std::to_string(file.size_bytes) + ":" +
         std::to_string(file.mtime_ns);
}

// An attempt that may have left a copy on the server that no job records: it is open, in doubt,
// or sent every byte and got no refusal without ending in a recorded success.
constexpr std::string_view kMayHaveStoredCopy =
    "(outcome IS NULL OR in_doubt = 1 OR (outcome NOT IN ('succeeded', 'reconciled') AND bytes_sent >= ?3 "
    "AND (http_status IS NULL OR http_status BETWEEN 200 AND 299)))";

}  // namespace

Result<std::optional<WallTime>> JobStore::in_doubt_since(JobId job) {
  auto since = db_.query_one(
      "SELECT min(started_at) FROM attempts WHERE job_id = ?1 AND in_doubt = 1 AND outcome IS NOT NULL "
      "AND attempt > coalesce((SELECT max(attempt) FROM attempts WHERE job_id = ?1 "
      "AND outcome IN ('succeeded', 'reconciled')), 0)",
      [](const Statement& row) { return row.is_null(0) ? std::nullopt : parse_timestamp(row.text(0)); }, job);
  if (!since) return since.error();
  return since->value_or(std::nullopt);
}

// Why `job` may not adopt: another job of the same recorded name, size and project (or this job
// with an earlier version of its file) may have stored a copy since `floor` that nobody records.
// Copies of the job's present file, from its own attempts, are what is being looked for.
static Result<std::optional<std::string>> unrecorded_rival_copy(Connection& db, const Job& job, const std::string& name,
                                                                WallTime floor, const RecordedName& recorded_name) {
  struct SameKey {
    JobId id;
    std::filesystem::path path;
    std::string state;
  };
  auto same_key = db.query_all(
      "SELECT id, path, state FROM jobs WHERE size_bytes = ?1 AND project_id IS ?2",
      [](const Statement& row) {
        return SameKey{row.int64(0), row.text(1), row.text(2)};
      },
      job.size_bytes, job.project_id);
  if (!same_key) return same_key.error();
  std::vector<std::pair<JobId, std::string>> rivals;
  for (auto& candidate : *same_key) {
    if (recorded_name(candidate.path.filename().string()) == name) rivals.emplace_back(candidate.id, candidate.state);
  }
  static const std::string sql =
      "SELECT attempt, in_doubt, outcome IS NULL, sent_identity IS ?4, finished_at IS NULL OR finished_at >= ?2 "
      "FROM attempts WHERE job_id = ?1 AND " +
      std::string(kMayHaveStoredCopy);
  struct RivalAttempt {
    std::int64_t attempt;
    bool in_doubt;
    bool open;
    bool sent_present_file;
    bool in_window;
  };
  const std::string present = identity_text(job.file);
  for (const auto& [rival, state] : rivals) {
    auto attempts = db.query_all(
        sql,
        [](const Statement& a) {
          return RivalAttempt{a.int64(0), a.int64(1) != 0, a.int64(2) != 0, a.int64(3) != 0, a.int64(4) != 0};
        },
        rival, format_timestamp(floor), job.size_bytes, present);
    if (!attempts) return attempts.error();
    for (const auto& a : *attempts) {
      if (rival == job.id) {
        if (a.open || a.sent_present_file) continue;  // the attempt asking, or a copy of the present file
        if (a.in_window)
          return std::optional<std::string>("an earlier version of this file was sent in attempt " +
                                            std::to_string(a.attempt));
        continue;
      }
      const bool unresolved = a.in_doubt && (state == "pending" || state == "uploading");
      if (a.in_window || unresolved) {
        return std::optional<std::string>("job " + std::to_string(rival) +
                                          ", of the same name and size, may have stored a copy (attempt " +
                                          std::to_string(a.attempt) + ")");
      }
    }
  }
  return std::optional<std::string>{};
}

Result<Reconciliation> JobStore::reconcile(JobId job_id, WallTime since, std::span<const ListedFile> listing,
                                           const RecordedName& recorded_name, WallTime now) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  auto job = require_job(job_id);
  if (!job) return job.error();
  if (job->state != JobState::uploading) return Reconciliation{false, std::nullopt, "the job is no longer uploading"};
  const std::string name = recorded_name(job->path.filename().string());
  const WallTime not_before = since - kInDoubtClockMargin;

  if (auto rival = unrecorded_rival_copy(db_, *job, name, not_before - kInDoubtClockMargin, recorded_name); !rival) {
    return rival.error();
  } else if (*rival) {
    return Reconciliation{false, std::nullopt, **rival};
  }

  std::vector<const ListedFile*> matches;
  for (const auto& file : listing) {
    if (file.filename != name || file.bytes != job->size_bytes || file.created_at < not_before) continue;
    auto recorded = db_.query_one("SELECT 1 FROM jobs WHERE file_id = ?1 LIMIT 1", first_int64, file.id);
    if (!recorded) return recorded.error();
    if (!*recorded) matches.push_back(&file);
  }
  if (matches.size() != 1) {
    return Reconciliation{false, std::nullopt,
                          std::to_string(matches.size()) + " files named " + name + " of " +
                              std::to_string(job->size_bytes) + " bytes since " + format_timestamp(not_before) +
                              " that no job records"};
  }

  const ListedFile& file = *matches.front();
  AttemptReport report;
  report.job = job_id;
  report.outcome = AttemptOutcome::reconciled;
  report.next_state = JobState::succeeded;
  report.http_status = 200;
  report.bytes_sent = job->size_bytes;
  report.file_id = file.id;
  report.file_status = file.status;
  report.file_status_details = file.status_details;
  auto after = finish_attempt(report, now);
  if (!after) return after.error();
  if (auto committed = write->commit(); !committed) return committed.error();
  const bool adopted = after->state == JobState::succeeded;
  return Reconciliation{adopted, std::move(*after),
                        adopted ? "adopted " + file.id + ", stored by an attempt whose answer was lost"
                                : "cancelled while the server's files were listed"};
}

}  // namespace modeldrop::store
